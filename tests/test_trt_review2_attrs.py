"""graphopt.backends.trt_check, second review against TensorRT's own sources: each test is one
rule where the check disagreed with what TensorRT's ONNX parser (onnx/onnx-tensorrt) or its
layers (NVIDIA/TensorRT include/NvInfer.h) do, cited in the test's docstring."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt, errors
from tests.trt_models import const, messages, model, vi

# -- attribute rules that refused what the parser takes -----------------------------------------


def test_topk_with_a_computed_k_is_accepted():
    """onnx-tensorrt importTopK (10.x) feeds K as a tensor (layer->setInput(1, K); changelog
    8.6 EA: "Added support for TopK operators with dynamic K values"); operators.md 10.15
    restricts only `sorted` and K < 3840."""
    node = helper.make_node("TopK", ["x", "k"], ["y", "i"], name="topk")
    m = model(
        [node],
        [vi("x", [1, 5000]), vi("k", [1], TensorProto.INT64)],
        [vi("y", None), vi("i", None, TensorProto.INT64)],
    )
    assert messages(check_tensorrt(m, 10)) == []


def pad(mode: str, pads, axes=None, x_dims=(1, 3, 8, 8)) -> onnx.ModelProto:
    inputs = [vi("x", list(x_dims))]
    names = ["x", "p"]
    if axes == "input":
        inputs.append(vi("axes", [2], TensorProto.INT64))
        names += ["", "axes"]
    node = helper.make_node("Pad", names, ["y"], mode=mode, name="pad")
    return model([node], inputs, [vi("y", None)], [const("p", pads, np.int64)], opset=18)


def test_reflect_pad_wider_than_the_dimension_is_accepted():
    """NvInfer.h SampleMode::kREFLECT (NVIDIA/TensorRT release/10.16, release/11.1): "the
    reflections are repeated indefinitely within the padded regions" (the ONNX reference's
    numpy reflect); onnx-tensorrt importPad has no size limit and operators.md 10.15 lists none."""
    wide = pad("reflect", [0, 0, 8, 0, 0, 0, 1, 0])
    assert messages(check_tensorrt(wide, 10)) == []
    assert messages(check_tensorrt(wide, 11)) == []


def test_pad_axes_from_a_tensor_need_tensorrt_10_4():
    """onnx-tensorrt Changelog, TensorRT 10.4 GA: "Added support for tensor `axes` for `Pad`
    operations" (10.1 GA operators.md: "`axes` must be an initializer"; 10.15: no restriction)."""
    m = pad("constant", [1, 1, 1, 1], axes="input")
    assert messages(check_tensorrt(m, 10)) == []
    assert messages(check_tensorrt(m, 11)) == []
    old = messages(check_tensorrt(m, "10.3"))
    assert len(old) == 1 and "axes" in old[0]


def test_one_d_max_and_average_pool_are_accepted():
    """onnx-tensorrt importerUtils.cpp poolingHelper (10.1 GA .. 10.x): a rank-3 input is
    unsqueezed to 2-D ("Expand spatial dims from 1D to 2D") and squeezed back."""
    for op in ("MaxPool", "AveragePool"):
        node = helper.make_node(op, ["x"], ["y"], kernel_shape=[2], name="pool")
        m = model([node], [vi("x", [1, 3, 8])], [vi("y", None)])
        assert messages(check_tensorrt(m, 10)) == [], op
    lp = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2], name="pool")
    found = errors(check_tensorrt(model([lp], [vi("x", [1, 3, 8])], [vi("y", None)]), 10))
    assert len(found) == 1 and "2-D or 3-D" in found[0].message  # LpPool has no 1-D path


def test_squeeze_without_axes_on_a_static_shape_is_accepted_before_11_5():
    """onnx-tensorrt importSqueeze (10.x): without axes it squeezes the 1-dims of a static shape
    and refuses only a dynamic one ("Cannot infer squeeze dimensions from a dynamic shape!");
    the 11.5 release notes add the omitted-axes case for the rest."""
    static = model(
        [helper.make_node("Squeeze", ["x"], ["y"])], [vi("x", [1, 3, 1, 8])], [vi("y", None)]
    )
    assert messages(check_tensorrt(static, 10)) == []
    assert messages(check_tensorrt(static, "11.4")) == []
    dynamic = model(
        [helper.make_node("Squeeze", ["x"], ["y"])], [vi("x", ["N", 3, 1, 8])], [vi("y", None)]
    )
    assert len(messages(check_tensorrt(dynamic, 10, shapes={"x": None}))) == 1
    assert messages(check_tensorrt(dynamic, "11.5", shapes={"x": None})) == []
