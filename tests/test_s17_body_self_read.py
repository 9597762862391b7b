"""A node whose If/Loop/Scan body reads the node's own output is a cycle (onnxruntime: "the
graph is not acyclic"; onnx's checker: not topologically sorted). `Graph.toposort` skips a
node's reads of itself, so optimize wrote such a model back as given; load refuses it now in
one line. A body reading a later node's output is no cycle: onnxruntime runs it, and optimize
puts the node after that one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import graphopt
from graphopt.errors import LoadError

_ELSE = h.make_graph(
    [h.make_node("Identity", ["x"], ["e"])],
    "else",
    [],
    [h.make_tensor_value_info("e", T.FLOAT, [1])],
)
_INPUTS = [h.make_tensor_value_info("c", T.BOOL, []), h.make_tensor_value_info("x", T.FLOAT, [1])]


def _then(reads: str) -> onnx.GraphProto:
    return h.make_graph(
        [h.make_node("Identity", [reads], ["t"])],
        "then",
        [],
        [h.make_tensor_value_info("t", T.FLOAT, [1])],
    )


def _model(nodes: list[onnx.NodeProto], outputs: list[str]) -> onnx.ModelProto:
    graph = h.make_graph(
        nodes, "g", _INPUTS, [h.make_tensor_value_info(o, T.FLOAT, [1]) for o in outputs]
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _self_reading_if() -> onnx.ModelProto:
    node = h.make_node("If", ["c"], ["y"], name="guard", then_branch=_then("y"), else_branch=_ELSE)
    return _model([node], ["y"])


def _self_reading_loop_body() -> onnx.ModelProto:
    """A Loop whose body holds an If whose branch reads the Loop's own output `y`."""
    inner = h.make_node("If", ["cond_in"], ["t2"], then_branch=_then("y"), else_branch=_ELSE)
    body = h.make_graph(
        [h.make_node("Identity", ["cond_in"], ["cond_out"]), inner],
        "body",
        [
            h.make_tensor_value_info("i", T.INT64, []),
            h.make_tensor_value_info("cond_in", T.BOOL, []),
        ],
        [
            h.make_tensor_value_info("cond_out", T.BOOL, []),
            h.make_tensor_value_info("t2", T.FLOAT, [1]),
        ],
    )
    trip = h.make_node("Constant", [], ["n"], value=h.make_tensor("n", T.INT64, [], [1]))
    loop = h.make_node("Loop", ["n", "c"], ["y"], name="loop", body=body)
    return _model([trip, loop], ["y"])


@pytest.mark.parametrize("make", [_self_reading_if, _self_reading_loop_body])
def test_a_body_reading_its_own_nodes_output_is_refused_in_one_line(make):
    model = make()
    with pytest.raises(Exception, match="not acyclic"):  # what onnxruntime says of it
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(LoadError, match=r"reads its own output 'y' in its If/Loop/Scan body"):
        graphopt.optimize(model)


def test_the_cli_exits_2_and_writes_nothing(tmp_path: Path):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_self_reading_if(), src)
    result = subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "'guard' (If) reads its own output 'y'" in result.stderr
    assert not out.exists()


def test_a_body_reading_a_later_nodes_output_still_optimizes():
    later = h.make_node("Relu", ["x"], ["z"])
    node = h.make_node("If", ["c"], ["y"], then_branch=_then("z"), else_branch=_ELSE)
    model = _model([node, later], ["y", "z"])
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)  # now in order
    feeds = {"c": np.array(True), "x": np.array([-2.0], np.float32)}
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, b in zip(want.run(None, feeds), got.run(None, feeds), strict=True):
        np.testing.assert_array_equal(a, b)
