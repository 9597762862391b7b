"""Regressions found by tests/test_pipeline_fuzz13 (float16 models at opsets below 11)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run, session
from graphopt.ir.opset_conversion import convert_opset


def _hardswish_then_pad(dtype: str, np_type: type) -> onnx.ModelProto:
    """x·relu6(x + 3)/6 with Clip's attributes, then a Pad with a value: opset 10."""
    model = onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : 10]>
        g ({dtype}[1, 4, 3, 3] x) => ({dtype}[1, 4, 5, 5] y) {{
            a = Add(x, three)
            c = Clip<min=0.0, max=6.0>(a)
            m = Mul(x, c)
            h = Div(m, six)
            y = Pad<pads=[0, 0, 1, 1, 0, 0, 1, 1], value=1.5>(h)
        }}"""
    )
    for name, value in (("three", 3.0), ("six", 6.0)):
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, np_type), name))
    return model


def _outputs(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return run(session(model, level="disable", threads=1), {"x": x})["y"]


def test_float16_clip_and_pad_upgrade_past_opset_11() -> None:
    """onnx.version_converter's 10 -> 11 adapters make Clip's min/max and Pad's
    constant_value float32 Constants whatever the data's type: the converted float16 model
    failed onnx's check ('constant_value has inconsistent type tensor(float)'), so
    upgrade_opset kept opset 10 and the HardSwish was not fused (the fuzz's float16 models at
    opsets 7-10 logged 'cannot upgrade opset 8 -> 18: ... Clip ... min has inconsistent
    type' and the same for Pad)."""
    model = _hardswish_then_pad("float16", np.float16)
    onnx.checker.check_model(model, full_check=True)
    result = graphopt.optimize(model, pipeline="default", upgrade_opset=True)
    onnx.checker.check_model(result, full_check=True)
    assert result.opset_import[0].version == 14
    assert "HardSwish" in [n.op_type for n in result.graph.node]
    x = np.linspace(-5, 5, 36, dtype=np.float16).reshape(1, 4, 3, 3)
    got, want = _outputs(result, x), _outputs(model, x)
    assert got.dtype == want.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), 2e-3, 2e-3)


def test_double_clip_converts_with_double_bounds() -> None:
    """The same for double data, through convert_opset directly (merge and quantize use it)."""
    model = _hardswish_then_pad("double", np.float64)
    converted = convert_opset(model, 13)
    onnx.checker.check_model(converted, full_check=True)
    bounds = [
        a.t.data_type
        for n in converted.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    ]
    assert bounds and set(bounds) == {onnx.TensorProto.DOUBLE}
    x = np.linspace(-5, 5, 36).reshape(1, 4, 3, 3)
    inner = x * np.clip(x + 3, 0, 6) / 6  # (onnxruntime has no double Clip-6 for the original)
    want = np.pad(inner, [(0, 0), (0, 0), (1, 1), (1, 1)], constant_values=1.5)
    np.testing.assert_allclose(_outputs(converted, x), want, 1e-12, 1e-12)


def test_float8_cast_is_not_folded_as_its_raw_bytes() -> None:
    """onnxruntime's Python binding returns a float8e4m3fn tensor as its raw bytes (uint8):
    constant folding took Cast(c, to=FLOAT8E4M3FN) to be the uint8 values 59, 194, 78, 121
    and the Cast back to float gave those numbers instead of 1.375, -2.5, 7, 288."""
    from onnx import TensorProto, helper

    c = numpy_helper.from_array(np.array([1.4, -2.6, 7.0, 300.0], np.float32), "c")
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["c"], ["q"], to=TensorProto.FLOAT8E4M3FN),
            helper.make_node("Cast", ["q"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["f", "x"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [c],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    x = np.zeros(4, np.float32)
    want = _outputs(model, x)
    np.testing.assert_array_equal(want, [1.375, -2.5, 7.0, 288.0])  # float8e4m3fn's values
    for pipeline in ("default", "simplify"):
        result = graphopt.optimize(model, pipeline=pipeline)
        onnx.checker.check_model(result, full_check=True)
        np.testing.assert_array_equal(_outputs(result, x), want)
