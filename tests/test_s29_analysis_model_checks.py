"""The analyses of a ModelProto (`fuse_ops(model)`, `post_dominator_tree(model)`,
`shape_facts(model)`) index a skeleton of it themselves; they did not check what `load` checks
of its If/Loop/Scan bodies (and `shape_facts` nothing at all), so a required input left out
(RegexFullMatch('') in an If branch, or in the main graph for `shape_facts`) crashed onnx's
shape inference: a segmentation fault where a path, bytes or `optimize` said it in one line.
Run in a child process: on the parent the process dies."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.child_process import run_code


def _regex_in_branch() -> onnx.ModelProto:
    regex = helper.make_node("RegexFullMatch", [""], ["b"], pattern="a", name="bad")
    then = helper.make_graph([regex], "then", [], [helper.make_tensor_value_info("b", 9, None)])
    other = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.BOOL, None)],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if")],
        "g",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s", TensorProto.BOOL, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def _regex_in_main() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("RegexFullMatch", [""], ["y"], pattern="a", name="bad")],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


CALLS = {
    "fuse_ops": "from graphopt.analysis import fuse_ops as run",
    "shape_facts": "from graphopt.analysis import shape_facts as run",
    "post_dominator_tree": "from graphopt.analysis import post_dominator_tree as run",
}


@pytest.mark.parametrize("where", ["branch", "main"])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_an_analysis_of_a_modelproto_refuses_a_left_out_input(
    tmp_path: Path, call: str, where: str
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_regex_in_branch() if where == "branch" else _regex_in_main(), path)
    code = (
        "import sys, onnx\n"
        f"{CALLS[call]}\n"
        "from graphopt.errors import LoadError\n"
        "try:\n"
        "    run(onnx.load(sys.argv[1]))\n"
        "except LoadError as e:\n"
        "    print(e)\n"
    )
    done = run_code(code, str(path))
    assert done.returncode == 0, (done.returncode, done.stderr[-300:])
    assert done.stdout.startswith(
        "the given ModelProto: node 'bad' (RegexFullMatch) leaves out its input 0 ('X')"
    ), done.stdout
