"""Review leftovers 11: one opset conversion for every caller, the float16 path's IR version,
segmented initializers (each test fails on the commit before its fix)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import OpsetConversionError
from graphopt.ir.opset_conversion import convert_opset


def _model(nodes, inits, opset: int, x_dims, y_dims, ir: int = 7) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    return model


def _qdq_conv(opset: int, ir: int) -> onnx.ModelProto:
    """y = Conv(DQ(Q(x)), w): a Q/DQ model as graphopt quantize writes one."""
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(0, np.int8), "xz"),
        numpy_helper.from_array(w, "w"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
        helper.make_node("Conv", ["xd", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
    ]
    return _model(nodes, inits, opset, [1, 3, 8, 8], [1, 4, 8, 8], ir)


def _needed_ir(model: onnx.ModelProto) -> int:
    return onnx.helper.find_min_ir_version_for(list(model.opset_import), True)


# ---------------------------------------------------------------------------------------------
# 1. convert_opset: the one conversion optimize, quantize, merge and the float16 path share


def test_convert_opset_converts_restores_and_raises_the_ir_version() -> None:
    """The sequence each caller spelled: convert, give back what the converter drops, raise
    the IR version to what the new opset needs; the caller's model is left as it was."""
    model = _qdq_conv(13, 7)
    model.graph.node[2].metadata_props.add(key="k", value="v")
    before = model.SerializeToString()
    out = convert_opset(model, 19)
    assert model.SerializeToString() == before
    assert out.opset_import[0].version == 19
    assert out.ir_version == _needed_ir(out) == 9
    assert [(p.key, p.value) for p in out.graph.node[2].metadata_props] == [("k", "v")]
    onnx.checker.check_model(out, full_check=True)


def test_convert_opset_names_why_it_refuses() -> None:
    """A refusal's kind is what each caller's policy reads (keep the opset, or stop)."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    upsample = helper.make_node("Upsample", ["x", "s"], ["y"], mode="linear")
    with pytest.raises(OpsetConversionError, match="would change what the model computes") as e:
        convert_opset(_model([upsample], [scales], 9, [1, 1, 3, 3], [1, 1, 6, 6]), 13)
    assert e.value.kind == "misconverted"
    assert "Upsample in linear mode" in e.value.reason

    with_function = _qdq_conv(13, 8)
    with_function.functions.add().CopyFrom(
        onnx.parser.parse_function(
            '<domain: "local", opset_import: ["" : 13]>\nTwice (a) => (b) {\n  b = Add(a, a)\n}'
        )
    )
    with pytest.raises(OpsetConversionError) as e:
        convert_opset(with_function, 19)
    assert e.value.kind == "local-functions"

    with pytest.raises(OpsetConversionError, match="version_converter failed") as e:
        convert_opset(_qdq_conv(13, 7), 1013)  # no such opset: the converter raises from C++
    assert e.value.kind == "converter-failed"
    assert "invalid version" in e.value.reason


# ---------------------------------------------------------------------------------------------
# 2. the TensorRT float16 path raises the IR version with the opset


def test_fp16_qdq_model_moved_to_opset_19_declares_the_ir_version_19_needs() -> None:
    """Fails on the parent: the float16 path moved an IR-7 / opset-13 Q/DQ model to opset 19
    and kept IR 7 (opset 19 came with IR 9), where optimize, quantize and merge raise it."""
    from graphopt.backends.onnxruntime import run as ort_run
    from graphopt.backends.tensorrt import fp16_model

    model = _qdq_conv(13, 7)
    half = fp16_model(model)
    assert half.opset_import[0].version == 19
    assert half.ir_version >= _needed_ir(half) == 9
    onnx.checker.check_model(half, full_check=True)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        ort_run(half, {"x": x})["y"], ort_run(model, {"x": x})["y"], rtol=1e-2, atol=1e-2
    )
