"""A node that writes one tensor name twice (Split(x) -> [a, a]), in the main graph or in an
If body: onnx.checker ("SSA form") and onnxruntime refuse the model, yet load took it and the
default pipeline wrote a model both accept (H209 found it). Refused at load in one line naming
the node and the tensor (the same message checked or not, as test_graph_index_names wants of
the SSA errors); optional outputs left empty ("", "") still load."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError
from tests.test_cli_review3 import one_line_error

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)


def _model(nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [X], [Y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _split_twice() -> onnx.ModelProto:
    return _model(
        [
            helper.make_node("Split", ["x"], ["a", "a"], axis=0),
            helper.make_node("Relu", ["a"], ["y"]),
        ]
    )


def _in_a_body() -> onnx.ModelProto:
    body = helper.make_graph(
        [
            helper.make_node("Split", ["x"], ["b", "b"], axis=0),
            helper.make_node("Neg", ["b"], ["z"]),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["w"])],
        "else",
        [],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, None)],
    )
    cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
    model = _model([helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=other)])
    model.graph.initializer.append(cond)
    return model


@pytest.mark.parametrize("build", [_split_twice, _in_a_body])
def test_the_original_is_refused_by_the_checker(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(build(), full_check=True)


def test_optimize_refuses_a_node_writing_one_tensor_twice() -> None:
    with pytest.raises(LoadError, match="'Split_0' \\(Split\\) writes tensor 'a' twice"):
        graphopt.optimize(_split_twice())


def test_optimize_refuses_it_in_an_if_body() -> None:
    with pytest.raises(LoadError, match="writes tensor 'b'"):
        graphopt.optimize(_in_a_body())


def test_the_cli_names_the_file_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "dup.onnx"
    onnx.save(_split_twice(), str(src))
    assert main(["optimize", str(src), "-o", str(tmp_path / "out.onnx")]) == 2
    one_line_error(capsys, "node 'Split_0' (Split) writes tensor 'a' twice")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup.onnx"]


def test_empty_optional_outputs_given_twice_still_load() -> None:
    nodes = [
        helper.make_node("Dropout", ["x"], ["y", ""]),
    ]
    model = _model(nodes)
    out = graphopt.optimize(model)
    assert [o.name for o in out.graph.output] == ["y"]
    twice = _model([helper.make_node("Split", ["x"], ["y", "", ""], axis=0, split=[4, 0, 0])])
    twice.opset_import[0].version = 11
    assert [o.name for o in graphopt.optimize(twice).graph.output] == ["y"]
