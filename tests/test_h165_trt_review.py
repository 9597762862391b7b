"""H165: graphopt's TensorRT tables and static check against TensorRT's own sources.

Each test is one place where graphopt.backends.trt_support / trt_check disagreed with what
TensorRT's ONNX parser (onnx/onnx-tensorrt, 10.0 GA and 10.1 GA commits, and the 10.14-era
onnxOpImporters.cpp) or its layers (NVIDIA/TensorRT include/NvInfer.h, release/10.x and 11.1)
do; the source is in the test's docstring."""

from __future__ import annotations

import numpy as np
from onnx import helper

from graphopt.backends.trt_check import check_tensorrt
from graphopt.backends.trt_support import op_support, parse_version
from tests.trt_models import const, messages, model, vi


def deform_conv_model():
    node = helper.make_node("DeformConv", ["x", "w", "off"], ["y"], name="dcn", pads=[1, 1, 1, 1])
    w = const("w", np.ones((2, 2, 3, 3)), np.float32)
    return model(
        [node], [vi("x", [1, 2, 5, 5]), vi("off", [1, 18, 5, 5])], [vi("y", None)], [w], opset=19
    )


def test_deform_conv_arrives_in_tensorrt_10_1():
    """onnx-tensorrt docs/Changelog.md, 10.1 GA: "Added support for `DeformConv` operation";
    the 10.0 GA operators.md has no DeformConv row and onnxOpImporters.cpp at 10.0-GA no
    DeformConv importer. The table said 'yes' on 10.0, so check passed a model 10.0 rejects."""
    assert op_support("DeformConv", parse_version("10.0")) == "no"
    assert op_support("DeformConv", parse_version("10.1")) == "yes"
    old = messages(check_tensorrt(deform_conv_model(), "10.0"))
    assert old == ["unsupported-op: TensorRT 10.0's ONNX parser does not support DeformConv"]
    assert messages(check_tensorrt(deform_conv_model(), "10.1")) == []
    assert messages(check_tensorrt(deform_conv_model(), 11)) == []
