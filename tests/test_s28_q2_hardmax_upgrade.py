"""A Hardmax below opset 13 converted across 13: Hardmax-1/11 coerces its input to 2-D
[prod(dims[:axis]), prod(dims[axis:])], Hardmax-13 works along one axis, and
onnx.version_converter has no adapter, so every conversion was refused ("Hardmax changes
meaning at opset 13 (no adapter)"), and quantize refused such a model. Now
`opset_conversion.adapt_hardmax` makes it Reshape(Hardmax-13(Flatten(x, axis), axis=-1),
Shape(x)): outputs identical to the original's in onnxruntime over shapes and axes (default,
0, negative, last), ties included. At opset 13 an input with an unknown dim stays refused
(Reshape-13 cannot restore a 0 dim); at 14+ (Reshape's allowzero) it converts, empty inputs
included."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt
from graphopt.errors import OpsetConversionError
from graphopt.ir.opset_conversion import convert_opset

_RNG = np.random.default_rng(0)


def _hardmax(opset: int, dims: list[int | str], axis: int | None) -> onnx.ModelProto:
    kw = {} if axis is None else {"axis": axis}
    node = h.make_node("Hardmax", ["x"], ["y"], name="hm", **kw)
    graph = h.make_graph(
        [node],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _inputs(shape: tuple[int, ...]) -> list[np.ndarray]:
    """A normal draw, and small integers (ties: the first maximum in the flattened row wins)."""
    return [
        _RNG.standard_normal(shape).astype(np.float32),
        _RNG.integers(-2, 3, shape).astype(np.float32),
    ]


_CASES = [
    ((2, 3, 4, 5), None),
    ((2, 3, 4, 5), 0),
    ((2, 3, 4, 5), 1),
    ((2, 3, 4, 5), 2),
    ((2, 3, 4, 5), -3),
    ((2, 3, 4, 5), -4),
    ((3, 4, 2), -2),
    ((3, 4, 2), 2),
    ((6, 7), 0),
    ((5,), 0),
]


@pytest.mark.parametrize(("shape", "axis"), _CASES)
@pytest.mark.parametrize("opset", [11, 12])
@pytest.mark.parametrize("target", [13, 14, 19])
def test_converted_hardmax_computes_the_same(
    shape: tuple[int, ...], axis: int | None, opset: int, target: int
) -> None:
    model = _hardmax(opset, list(shape), axis)
    converted = convert_opset(model, target)
    onnx.checker.check_model(converted, full_check=True)
    for x in _inputs(shape):
        np.testing.assert_array_equal(_run(converted, x), _run(model, x))


def test_hardmax_1_with_its_default_axis_converts() -> None:
    """Opset 10 (Hardmax-1: default axis 1, which Hardmax-13 reads as -1 when left unset)."""
    model = _hardmax(10, [2, 3, 4], None)
    converted = convert_opset(model, 13)
    for x in _inputs((2, 3, 4)):
        np.testing.assert_array_equal(_run(converted, x), _run(model, x))


def test_the_last_axis_needs_no_adapter() -> None:
    converted = convert_opset(_hardmax(12, ["N", 3, "W"], -1), 13)
    assert [n.op_type for n in converted.graph.node] == ["Hardmax"]
    converted = convert_opset(_hardmax(12, [2, 3, 4], 2), 13)
    assert [n.op_type for n in converted.graph.node] == ["Hardmax"]
    x = _inputs((2, 3, 4))[1]
    np.testing.assert_array_equal(_run(converted, x), _run(_hardmax(12, [2, 3, 4], 2), x))


def test_unknown_dims_refused_at_13_and_converted_at_14() -> None:
    model = _hardmax(12, ["N", 3, "W"], 1)
    with pytest.raises(OpsetConversionError, match="Hardmax changes meaning at opset 13") as e:
        convert_opset(model, 13)
    assert e.value.kind == "misconverted"
    converted = convert_opset(model, 14)
    onnx.checker.check_model(converted, full_check=True)
    for shape in ((2, 3, 4), (0, 3, 4), (2, 3, 0)):
        x = _RNG.integers(-2, 3, shape).astype(np.float32)
        want, got = _run(model, x), _run(converted, x)
        assert got.shape == want.shape == shape
        np.testing.assert_array_equal(got, want)


def test_hardmax_in_an_if_branch_converts() -> None:
    def branch(name: str, axis: int) -> onnx.GraphProto:
        out = h.make_tensor_value_info(name + "_o", TensorProto.FLOAT, [2, 3, 4])
        node = h.make_node("Hardmax", ["x"], [name + "_o"], axis=axis)
        return h.make_graph([node], name, [], [out])

    nodes = [
        h.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        h.make_node("Greater", ["s", "zero"], ["c"]),
        h.make_node("If", ["c"], ["y"], then_branch=branch("t", 0), else_branch=branch("e", 1)),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])],
        [nh.from_array(np.array(0, np.float32), "zero")],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 12)])
    model.ir_version = 7
    converted = convert_opset(model, 13)
    onnx.checker.check_model(converted, full_check=True)
    for x in (*_inputs((2, 3, 4)), -np.abs(_inputs((2, 3, 4))[0]), np.abs(_inputs((2, 3, 4))[0])):
        np.testing.assert_array_equal(_run(converted, x), _run(model, x))


@pytest.mark.parametrize("opset", [11, 12])
def test_quantize_upgrades_a_model_with_a_hardmax(opset: int) -> None:
    """Conv → Hardmax(axis=1) + LogSoftmax → Conv: refused before; now quantized at opset 13,
    its outputs near the float model's."""
    w = nh.from_array((_RNG.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32), "w")
    nodes = [
        h.make_node("Conv", ["x", "w"], ["a"], pads=[1] * 4, name="c0"),
        h.make_node("LogSoftmax", ["a"], ["s"], axis=1),
        h.make_node("Hardmax", ["a"], ["hm"], axis=1),
        h.make_node("Add", ["s", "hm"], ["b"]),
        h.make_node("Conv", ["b", "w"], ["y"], pads=[1] * 4, name="c1"),
    ]
    dims = [1, 4, 8, 8]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        [w],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = 7
    feeds = [{"x": _RNG.standard_normal(dims).astype(np.float32)} for _ in range(6)]
    quantized = graphopt.quantize(model, feeds, target="tensorrt", accuracy_target=None)
    onnx.checker.check_model(quantized, full_check=True)
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    for feed in feeds:
        want, got = _run(model, feed["x"]), _run(quantized, feed["x"])
        assert np.max(np.abs(want - got)) / np.max(np.abs(want)) < 0.1
