"""`check` below the TensorRT that takes computed axes: no upgrade is offered for axes read
from a network input's values at run time.

Squeeze/Unsqueeze `axes` and CumSum `axis` computed in the graph need TensorRT 10.7 / 10.8,
and from there only if TensorRT can fold them at build time. Below those versions an `axes`
that is a network input said "(a computed one needs TensorRT 10.7+)", though 10.7 refuses it
too ("depends on the values of 'ax' at run time"): the advice led to an upgrade that does not
help. Axes computed from static shapes keep the advice (10.7 takes them)."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt

vi = helper.make_tensor_value_info


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [vi("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


X = vi("x", TensorProto.FLOAT, [2, 3, 4])


def _messages(model: onnx.ModelProto, version: str) -> list[str]:
    return [f.message for f in check_tensorrt(model, version) if f.severity == "error"]


def test_axes_read_from_an_input_get_no_upgrade_advice() -> None:
    model = _model(
        [helper.make_node("Unsqueeze", ["x", "ax"], ["y"])], [X, vi("ax", TensorProto.INT64, [1])]
    )
    assert _messages(model, "10.6") == [
        "Unsqueeze axes must be an initializer or a Constant (a computed one needs TensorRT "
        "10.7+, and one that depends on the values of 'ax' at run time no version takes)"
    ]
    assert _messages(model, "10.7") == [  # what 10.7 says of it (unchanged)
        "Unsqueeze axes 'ax' depends on the values of 'ax' at run time; TensorRT needs it "
        "resolvable to a constant when it builds the engine"
    ]


def test_cumsum_axis_read_from_an_input_likewise() -> None:
    model = _model(
        [helper.make_node("CumSum", ["x", "a"], ["y"])], [X, vi("a", TensorProto.INT64, [])]
    )
    (message,) = _messages(model, "10.7")
    assert message.endswith("at run time no version takes)")


def test_axes_computed_from_static_shapes_keep_the_advice() -> None:
    """(control: passes on the parent too) 10.7 folds them at build time."""
    model = _model(
        [
            helper.make_node("Shape", ["x"], ["s"], start=0, end=1),
            helper.make_node("Sub", ["s", "s"], ["ax"]),
            helper.make_node("Unsqueeze", ["x", "ax"], ["y"]),
        ],
        [X],
    )
    assert _messages(model, "10.6") == [
        "Unsqueeze axes must be an initializer or a Constant (a computed one needs TensorRT 10.7+)"
    ]
    assert _messages(model, "10.7") == []
