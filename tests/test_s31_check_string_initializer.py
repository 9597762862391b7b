"""`graphopt check` on a node reading an initializer of an element type TensorRT has none for
(STRING: a Shape of a string table, or an Add onnxruntime refuses): check judged the types
of node outputs and graph inputs and outputs, and an initializer has neither a producer nor
a declaration there, so it said "0 errors". A node's initializer input of such a type is now
a dtype error on that node (Q/DQ's quantized types stay check_qdq's: no second finding)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.trt_check import check_tensorrt

_X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
_Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])


def _shape_of_strings() -> onnx.ModelProto:
    table = helper.make_tensor("table", TensorProto.STRING, [1], [b"cat"])
    nodes = [
        helper.make_node("Shape", ["table"], ["n"], name="count"),
        helper.make_node("Cast", ["n"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "f"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [_X], [_Y], [table])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_onnxruntime_runs_the_model() -> None:
    """A valid model (not graphopt's code: passes on the parent too)."""
    session = ort.InferenceSession(
        _shape_of_strings().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (y,) = session.run(None, {"x": np.float32([2.0])})
    assert y.tolist() == [3.0]


def test_check_reports_the_string_initializer() -> None:
    errors = [str(f) for f in check_tensorrt(_shape_of_strings()) if f.severity == "error"]
    assert errors == [
        "error: [dtype] node 'count' (Shape): input 'table', an initializer, is STRING, which "
        "TensorRT has no type for"
    ]


def test_a_float_initializer_and_int16_qdq_are_not_reported_again() -> None:
    """Controls: a float initializer is no finding; an INT16 DequantizeLinear's quantized type
    is check_qdq's finding alone (passes on the parent too)."""
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "s", "zp"], ["d"], name="dq"),
        helper.make_node("Add", ["x", "d"], ["a"]),
        helper.make_node("Add", ["a", "b"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.int16([1]), "w"),
        numpy_helper.from_array(np.float32(0.1), "s"),
        numpy_helper.from_array(np.int16(0), "zp"),
        numpy_helper.from_array(np.float32([1.0]), "b"),
    ]
    graph = helper.make_graph(nodes, "g", [_X], [_Y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    rules = [f.rule for f in check_tensorrt(model) if f.severity == "error"]
    assert rules == ["qdq-type"]
