"""`fp16_model` on If bodies that define a name an enclosing body defines too (its own
initializer, which onnx.checker and onnxruntime accept: the inner one shadows the
outer one). 54f7604 and c3bab4d rename a body's initializer (a name another graph has too) or
its out-of-range Constant, and its readers in that body and in every body inside it: a body
inside that defines the name itself then read the outer body's value instead of its own, a
wrong result without an error (here [2, 4] where the model gives [3, 6]; 33a4457 refused
the model, "cannot convert the model to float16: "). A renaming now stops at a body that
defines the name. Run in onnxruntime on both branches against the float32 original."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.tensorrt import fp16_model

X = np.array([1.0, 2.0], np.float32)


def _const(value: float, as_node: bool) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """`w` as a Constant node or an initializer (a Constant in the inner body too would
    define 'w' twice, which onnx.checker refuses: not SSA)."""
    array = np.array([value, value], np.float32)
    if as_node:
        return [h.make_node("Constant", [], ["w"], value=nh.from_array(array))], []
    return [], [nh.from_array(array, "w")]


def _body(name: str, value: float, as_node: bool, inner: onnx.GraphProto | None = None):
    """y = x * w, or, with `inner`, y = If(c){inner} + (w - w), w this body's own (value; a
    value beyond float16's range is only read by the Sub, kept float32)."""
    nodes, inits = _const(value, as_node)
    if inner is None:
        nodes.append(h.make_node("Mul", ["x", "w"], [f"o_{name}"]))
    else:
        nodes.append(h.make_node("If", ["c"], [f"i_{name}"], then_branch=inner, else_branch=inner))
        nodes.append(h.make_node("Sub", ["w", "w"], [f"z_{name}"]))
        nodes.append(h.make_node("Add", [f"i_{name}", f"z_{name}"], [f"o_{name}"]))
    out = [h.make_tensor_value_info(f"o_{name}", TP.FLOAT, [2])]
    return h.make_graph(nodes, name, [], out, inits)


def _model(outer_value: float, outer_node: bool) -> onnx.ModelProto:
    inner = _body("inner", 3.0, False)
    outer = _body("outer", outer_value, outer_node, inner)
    other = _body("other", 5.0, False)  # a sibling 'w' too: the outer one is renamed
    graph = h.make_graph(
        [h.make_node("If", ["c"], ["y"], then_branch=outer, else_branch=other)],
        "g",
        [h.make_tensor_value_info("x", TP.FLOAT, [2]), h.make_tensor_value_info("c", TP.BOOL, [])],
        [h.make_tensor_value_info("y", TP.FLOAT, [2])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize(
    ("outer_value", "outer_node"),
    [
        (2.0, False),  # initializers: the outer 'w' shares the sibling's name
        (1e5, False),  # ... and is beyond float16's range
        (1e5, True),  # a Constant beyond float16's range, made an initializer
    ],
)
def test_an_inner_body_keeps_reading_its_own_name(outer_value, outer_node):
    model = _model(outer_value, outer_node)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    for c in (True, False):
        feeds = {"x": X, "c": np.array(c)}
        want = ort_run(model, feeds, level="disable")["y"]
        got = ort_run(half, feeds, level="disable")["y"]
        np.testing.assert_allclose(got, want, rtol=1e-3)
