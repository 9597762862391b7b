"""`fp16_model` of a model with a Constant given as `value_float` / `value_floats` (found by
H179): onnxruntime's float16 converter declared the Constant's output float16 but left the
attribute a float, so the model failed onnx.checker ("Inferred elem type differs") and
onnxruntime. Such Constants now become float32 `value` tensors first, in every graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import session
from graphopt.backends.tensorrt import fp16_model

X = np.array([1.5, -3.0], np.float32)


def _io(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [2])


def _main(attr: str, value: object) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Constant", [], ["c"], **{attr: value}),
        helper.make_node("Div", ["x", "c"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [_io("x")], [_io("y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _in_if_body(attr: str, value: object) -> onnx.ModelProto:
    then = helper.make_graph(
        [
            helper.make_node("Constant", [], ["k"], **{attr: value}),
            helper.make_node("Div", ["x", "k"], ["t"]),
        ],
        "then",
        [],
        [_io("t")],
    )
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [_io("e")])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Less", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
    ]
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    graph = helper.make_graph(nodes, "g", [_io("x")], [_io("y")], [zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("build", [_main, _in_if_body])
@pytest.mark.parametrize(
    ("attr", "value"),
    [("value_float", 2.5), ("value_floats", [1.0, 2.0]), ("value_float", 1e6)],
    # x / 1e6: the constant is beyond float16 (it stays float32 and so does the Div, as for a
    # `value` tensor); the quotient, ~1e-6, is a float16 subnormal (spacing 6e-8) on its way out
    ids=["value_float", "value_floats", "value_float beyond float16"],
)
def test_a_constant_of_value_floats_converts_to_a_valid_model(
    build: object, attr: str, value: object
) -> None:
    model = build(attr, value)  # type: ignore[operator]
    onnx.checker.check_model(model, full_check=True)
    out = fp16_model(model)
    onnx.checker.check_model(out, full_check=True)
    want = session(model).run(None, {"x": X})[0]
    got = session(out).run(None, {"x": X})[0]
    assert got.dtype == np.float32  # the graph's outputs stay float32
    np.testing.assert_allclose(got, want, rtol=5e-2 if value == 1e6 else 1e-3)
    assert not any(
        a.name in ("value_float", "value_floats")
        for g in (out.graph, *(a.g for n in out.graph.node for a in n.attribute if a.g.node))
        for n in g.node
        for a in n.attribute
    )
