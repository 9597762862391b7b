"""H129, `graphopt inspect` as a fresh user met it (H128's walkthrough): its flag errors began
"usage error:" where argparse and every other command write "error:", and its report counted
"1 nodes have only the exit as post-dominator", "1 groups", "#0 1 nodes"."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _one_relu(path) -> str:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


@pytest.mark.parametrize(
    ("flag", "value", "least"), [("--top", "-1", 0), ("--max-group-size", "0", 1)]
)
def test_a_bad_flag_reads_as_every_commands_error(tmp_path, capsys, flag, value, least) -> None:  # type: ignore[no-untyped-def]
    assert main(["inspect", _one_relu(tmp_path / "m.onnx"), flag, value]) == 2
    theirs = capsys.readouterr().err
    assert theirs == (
        f"graphopt inspect: error: {flag} must be at least {least}, got {value} "
        "(see 'graphopt inspect --help')\n"
    )
    # argparse's own error for this command reads the same way
    with pytest.raises(SystemExit):
        main(["inspect", _one_relu(tmp_path / "m.onnx"), "--top", "many"])
    assert capsys.readouterr().err.startswith("graphopt inspect: error: argument --top")


def test_one_of_a_thing_is_counted_in_the_singular(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["inspect", _one_relu(tmp_path / "m.onnx"), "--groups"]) == 0
    out = capsys.readouterr().out
    assert "post-dominators: 1 node has only the exit as post-dominator; " in out
    assert "deepest chain 1 node (from r)" in out
    assert "fusion groups (TVM FuseOps, cap 256): 1 group; 0 groups fuse 0 nodes" in out
    assert "  #0 1 node ELEMWISE: Relu  [r]" in out
    assert "1 nodes" not in out and "1 groups" not in out, out


@pytest.mark.realmodel
def test_a_real_detector_counts_one_node_under_the_exit(real_model, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["inspect", str(real_model("common_det"))]) == 0
    out = capsys.readouterr().out
    # (common_det said "1 nodes have only the exit as post-dominator")
    assert "post-dominators: 1 node has only the exit as post-dominator; " in out
    assert "fusion groups (TVM FuseOps, cap 256): 101 groups; 84 groups fuse 262 nodes" in out
