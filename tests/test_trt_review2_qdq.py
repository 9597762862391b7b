"""graphopt.backends.trt_check, second review against TensorRT's own sources: each test is one
rule where the check disagreed with what TensorRT's ONNX parser (onnx/onnx-tensorrt) or its
layers (NVIDIA/TensorRT include/NvInfer.h) do, cited in the test's docstring."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt, errors
from tests.trt_models import const, messages, model, vi

# -- Q/DQ ----------------------------------------------------------------------------------------


def fake_quant_conv(w_axis: int = 0) -> onnx.ModelProto:
    """x → Q → DQ, float w → Q(axis) → DQ(axis) → Conv: the QAT export of pytorch-quantization
    and ModelOpt, weights kept in float32 with per-output-channel scales."""
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    n = w.shape[w_axis]
    inits = [
        const("w", w),
        const("ws", np.full(n, 0.01, np.float32)),
        const("wz", np.zeros(n, np.int8)),
        const("xs", 0.05, np.float32),
        const("xz", 0, np.int8),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
        helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], name="qw", axis=w_axis),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw", axis=w_axis),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv"),
    ]
    return model(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], inits, opset=13)


def test_per_channel_qdq_of_float_weights_is_accepted():
    """NvInfer.h (NVIDIA/TensorRT release/10.16 and release/11.1), IQuantizeLayer: "Per-channel
    quantization is supported only for weight inputs"; the developer guide's Explicit
    Quantization: TensorRT quantizes high-precision weights with the IQuantizeLayer scale. A Q/DQ
    pair on a float initializer is such a weight, not an activation."""
    assert messages(check_tensorrt(fake_quant_conv(), 10)) == []
    assert messages(check_tensorrt(fake_quant_conv(), 11)) == []


def test_per_channel_qdq_of_float_weights_still_needs_the_output_channel_axis():
    found = errors(check_tensorrt(fake_quant_conv(w_axis=1), 10))
    assert [(f.rule, f.node) for f in found] == [
        ("qdq-per-channel", "qw"),
        ("qdq-per-channel", "dqw"),
    ]
    assert all("axis 1" in f.message and "Conv 'conv'" in f.message for f in found)


def blocked(dtype) -> onnx.ModelProto:
    """w (INT8 or FLOAT8E4M3FN, [4, 8]) → DQ(axis 1, block_size 4) → MatMul."""
    w = helper.make_tensor("w", dtype, [4, 8], [1] * 32)
    z = helper.make_tensor("z", dtype, [4, 2], [0] * 8)
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "s", "z"], ["wd"], axis=1, block_size=4),
        helper.make_node("MatMul", ["x", "wd"], ["y"]),
    ]
    inits = [w, const("s", np.full((4, 2), 0.1, np.float32)), z]
    return model(nodes, [vi("x", [2, 4])], [vi("y", None)], inits, opset=21)


def test_blocked_quantization_is_refused_for_int8_only():
    """NvInfer.h IQuantizeLayer/IDequantizeLayer (NVIDIA/TensorRT release/10.16): "Block
    quantization is supported for input types DataType::kFP4, DataType::kFP8 and DataType::kINT4"."""
    found = errors(check_tensorrt(blocked(TensorProto.INT8), 10))
    assert [f.rule for f in found] == ["qdq-block"]
    assert "INT4, FP8 and FP4" in found[0].message
    assert [f.rule for f in errors(check_tensorrt(blocked(TensorProto.FLOAT8E4M3FN), 10))] == []
