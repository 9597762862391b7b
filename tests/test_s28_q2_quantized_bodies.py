"""quantize refuses a model that is already quantized: Q/DQ in its main graph were refused,
those in an If/Loop/Scan body or in a model-local function were not, and quantize stacked its
Q/DQ on the tensors they wrote. Now the detection looks into bodies (nested ones too) and
functions, with the main graph's message and where the ops are."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt
from graphopt.errors import QuantizeError

_RNG = np.random.default_rng(0)
_SCALE = [
    nh.from_array(np.array(0.05, np.float32), "s"),
    nh.from_array(np.array(0, np.int8), "z"),
]
_W = nh.from_array((_RNG.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32), "w")
_X = h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
_Y = h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
_FEEDS = [{"x": _RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)} for _ in range(2)]


def _body(name: str, qdq: bool) -> onnx.GraphProto:
    """A branch of an If: Q/DQ of the outer `a` (or a Relu of it)."""
    out = h.make_tensor_value_info(name + "_o", TensorProto.FLOAT, [1, 4, 8, 8])
    if not qdq:
        return h.make_graph([h.make_node("Relu", ["a"], [name + "_o"])], name, [], [out])
    nodes = [
        h.make_node("QuantizeLinear", ["a", "s", "z"], [name + "_q"]),
        h.make_node("DequantizeLinear", [name + "_q", "s", "z"], [name + "_o"]),
    ]
    return h.make_graph(nodes, name, [], [out])


def _if_model(then_branch: onnx.GraphProto, else_branch: onnx.GraphProto) -> onnx.ModelProto:
    """Conv → If(mean > 0) → Conv at opset 13."""
    nodes = [
        h.make_node("Conv", ["x", "w"], ["a"], pads=[1] * 4, name="c0"),
        h.make_node("ReduceMean", ["a"], ["m"], keepdims=0),
        h.make_node("Greater", ["m", "zero"], ["cond"]),
        h.make_node("If", ["cond"], ["b"], then_branch=then_branch, else_branch=else_branch),
        h.make_node("Conv", ["b", "w"], ["y"], pads=[1] * 4, name="c1"),
    ]
    zero = nh.from_array(np.array(0, np.float32), "zero")
    graph = h.make_graph(nodes, "g", [_X], [_Y], [_W, zero, *_SCALE])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def _refused(model: onnx.ModelProto) -> str:
    with pytest.raises(QuantizeError, match="the model is already quantized") as e:
        graphopt.quantize(model, _FEEDS, target="tensorrt", accuracy_target=None)
    assert "\n" not in str(e.value)
    assert "quantize its float original" in str(e.value)
    return str(e.value)


def test_qdq_in_an_if_branch_is_refused() -> None:
    model = _if_model(_body("then", True), _body("else", False))
    message = _refused(model)
    assert "(DequantizeLinear, QuantizeLinear in an If/Loop/Scan body)" in message


def test_qdq_in_a_nested_if_is_refused() -> None:
    """The Q/DQ sit in an If inside the then branch."""
    inner = h.make_node("If", ["cond"], ["then_o"], then_branch=_body("t2", True),
                        else_branch=_body("e2", False))  # fmt: skip
    out = h.make_tensor_value_info("then_o", TensorProto.FLOAT, [1, 4, 8, 8])
    outer_then = h.make_graph([inner], "then", [], [out])
    message = _refused(_if_model(outer_then, _body("else", False)))
    assert "in an If/Loop/Scan body" in message


def test_qdq_in_a_local_function_is_refused() -> None:
    function = h.make_function(
        "local",
        "FakeQuant",
        ["a"],
        ["b"],
        [
            h.make_node("Constant", [], ["s"], value=nh.from_array(np.float32(0.05), "s")),
            h.make_node("QuantizeLinear", ["a", "s"], ["q"]),
            h.make_node("DequantizeLinear", ["q", "s"], ["b"]),
        ],
        [h.make_opsetid("", 13)],
    )
    nodes = [
        h.make_node("Conv", ["x", "w"], ["a"], pads=[1] * 4, name="c0"),
        h.make_node("FakeQuant", ["a"], ["b"], domain="local", name="fq"),
        h.make_node("Conv", ["b", "w"], ["y"], pads=[1] * 4, name="c1"),
    ]
    graph = h.make_graph(nodes, "g", [_X], [_Y], [_W])
    imports = [h.make_opsetid("", 13), h.make_opsetid("local", 1)]
    model = h.make_model(graph, opset_imports=imports, functions=[function])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    message = _refused(model)
    assert "(DequantizeLinear, QuantizeLinear in local function local:FakeQuant)" in message


def test_qdq_in_the_main_graph_is_refused_as_before() -> None:
    """(passes on the parent too)"""
    nodes = [
        h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        h.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
        h.make_node("Conv", ["d", "w"], ["y"], pads=[1] * 4, name="c0"),
    ]
    graph = h.make_graph(nodes, "g", [_X], [_Y], [_W, *_SCALE])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 7
    message = _refused(model)
    assert "(DequantizeLinear, QuantizeLinear)" in message


def test_float_bodies_still_quantize() -> None:
    """(passes on the parent too)"""
    model = _if_model(_body("then", False), _body("else", False))
    quantized = graphopt.quantize(model, _FEEDS, target="tensorrt", accuracy_target=None)
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
