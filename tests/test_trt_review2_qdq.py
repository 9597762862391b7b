"""graphopt.backends.trt_check, second review against TensorRT's own sources: each test is one
rule where the check disagreed with what TensorRT's ONNX parser (onnx/onnx-tensorrt) or its
layers (NVIDIA/TensorRT include/NvInfer.h) do, cited in the test's docstring."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.trt_check import Finding, check_tensorrt, errors

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, dims, dtype=F):
    return helper.make_tensor_value_info(name, dtype, dims)


def const(name, value, dtype=None):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def messages(found: list[Finding]) -> list[str]:
    return [f"{f.rule}: {f.message}" for f in errors(found)]


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
