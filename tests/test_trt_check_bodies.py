"""`check --target tensorrt` on an If/Loop/Scan missing the graph attributes ONNX requires
(graphopt/backends/trt_check.py `check_bodies`): an error, where it reported 0 errors."""

from __future__ import annotations

import onnx.helper as oh
from onnx import TensorProto

from graphopt.backends.trt_check import check_tensorrt, errors

X = oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
Y = oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])


def _model(node):  # type: ignore[no-untyped-def]
    graph = oh.make_graph([node], "g", [X], [Y])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)


def _branch(op: str) -> object:
    return oh.make_graph([oh.make_node(op, ["x"], ["b"])], op, [], [Y])


def test_a_loop_without_its_body_is_an_error():
    found = errors(check_tensorrt(_model(oh.make_node("Loop", ["", "", "x"], ["y"], name="l"))))
    assert [(f.rule, f.message) for f in found] == [("onnx-invalid", "Loop has no body")]


def test_an_if_without_its_else_branch_is_an_error_and_a_whole_one_is_not():
    cond = oh.make_tensor_value_info("c", TensorProto.BOOL, [])
    half = oh.make_node("If", ["c"], ["y"], name="i", then_branch=_branch("Relu"))
    model = _model(half)
    model.graph.input.append(cond)
    assert [f.message for f in errors(check_tensorrt(model)) if f.rule == "onnx-invalid"] == [
        "If has no else_branch"
    ]
    whole = oh.make_node(
        "If", ["c"], ["y"], name="i", then_branch=_branch("Relu"), else_branch=_branch("Abs")
    )
    model = _model(whole)
    model.graph.input.append(cond)
    assert not [f for f in check_tensorrt(model) if f.rule == "onnx-invalid"]
