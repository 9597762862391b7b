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


def grid_sample_model(opset: int, mode: str | None):
    attrs = {} if mode is None else {"mode": mode}
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], name="gs", **attrs)
    return model(
        [node], [vi("x", [1, 1, 4, 4]), vi("grid", [1, 3, 3, 2])], [vi("y", None)], opset=opset
    )


def test_grid_sample_20_mode_names_are_an_error():
    """importGridSample (onnxOpImporters.cpp at 10.1 GA, and the 10.14-era text with the
    Attention importer) maps mode "nearest" / "bilinear" / "bicubic" and leaves any other value
    at InterpolationMode::kNEAREST without an error; GridSample-20 renamed the modes "linear" and
    "cubic". check said nothing, and TensorRT would sample nearest-neighbour where onnxruntime
    interpolates: on this grid the two differ (shown with onnxruntime's own nearest)."""
    import onnxruntime as ort

    linear = grid_sample_model(20, "linear")
    found = messages(check_tensorrt(linear, 10))
    assert len(found) == 1 and "GridSample mode 'linear'" in found[0], found
    assert "nearest-neighbour" in found[0] and "leave mode out" in found[0]
    assert len(messages(check_tensorrt(linear, 11))) == 1
    cubic = messages(check_tensorrt(grid_sample_model(20, "cubic"), 10))
    assert len(cubic) == 1 and "'bicubic'" in cubic[0], cubic
    # what the importer knows, and an absent mode (linear in ONNX 20, "bilinear" in the importer)
    assert messages(check_tensorrt(grid_sample_model(20, None), 10)) == []
    assert messages(check_tensorrt(grid_sample_model(20, "nearest"), 10)) == []
    assert messages(check_tensorrt(grid_sample_model(16, "bilinear"), 10)) == []
    assert messages(check_tensorrt(grid_sample_model(16, "bicubic"), 10)) == []

    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    grid = np.linspace(-0.8, 0.7, 18, dtype=np.float32).reshape(1, 3, 3, 2)

    def run(m):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x, "grid": grid})[0]

    wanted, trt_computes = run(linear), run(grid_sample_model(20, "nearest"))
    assert np.abs(wanted - trt_computes).max() > 0.5
