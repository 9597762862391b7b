"""fp16_model: an If/Loop/Scan whose body output is written by a node kept float32 for a
constant float16 cannot hold (Identity(1e5), Mul(1e5, x)) stays float32, bodies and all, as
one whose body outputs the constant itself does (H199 left it: the body's output was float16,
so the If's output, a graph output, was inf where the float32 model gives 1e5)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model


def _branch(name: str, value: float, op: str) -> onnx.GraphProto:
    c = h.make_node("Constant", [], [f"{name}_c"], value=nh.from_array(np.float32([value])))
    if op == "Identity":
        n = h.make_node("Identity", [f"{name}_c"], [f"{name}_y"], name=f"{name}_id")
    else:
        n = h.make_node("Mul", [f"{name}_c", "x"], [f"{name}_y"], name=f"{name}_mul")
    return h.make_graph([c, n], name, [], [h.make_tensor_value_info(f"{name}_y", T.FLOAT, [1])])


def _model(nested: bool, op: str) -> onnx.ModelProto:
    if nested:  # the then branch holds an If whose branches write the output
        inner = h.make_node(
            "If",
            ["c"],
            ["in_y"],
            name="inner",
            then_branch=_branch("a", 1e5, op),
            else_branch=_branch("b", 2e5, op),
        )
        then = h.make_graph([inner], "then", [], [h.make_tensor_value_info("in_y", T.FLOAT, [1])])
    else:
        then = _branch("t", 1e5, op)
    outer = h.make_node(
        "If", ["c"], ["z"], name="outer", then_branch=then, else_branch=_branch("e", 3e5, op)
    )
    graph = h.make_graph(
        [outer],
        "g",
        [h.make_tensor_value_info("c", T.BOOL, []), h.make_tensor_value_info("x", T.FLOAT, [1])],
        [h.make_tensor_value_info("z", T.FLOAT, [1])],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize("op", ["Identity", "Mul"])
@pytest.mark.parametrize("nested", [False, True], ids=["if-branch", "if-in-if-branch"])
def test_a_body_output_written_by_a_float32_node_keeps_its_value(nested: bool, op: str) -> None:
    model = _model(nested, op)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    (outer,) = [n for n in half.graph.node if n.op_type == "If"]
    assert outer.name == "outer"
    for c in (True, False):
        feeds = {"c": np.array(c), "x": np.float32([0.5])}
        want = run(model, feeds)["z"]
        got = run(half, feeds)["z"]
        assert np.isfinite(got).all()
        np.testing.assert_array_equal(got, want)  # float32 all the way: exact
