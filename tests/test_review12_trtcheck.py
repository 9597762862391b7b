"""check --target tensorrt against onnx-tensorrt's source, rule by rule (review 12).

Each test names the source text it follows; the sources are cited in trt_support.py and
trt_check.py. No TensorRT here: these pin what the static check says.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt, errors
from tests.trt_models import const, model, vi

I64 = TensorProto.INT64


def found(m: onnx.ModelProto, version) -> list[tuple[str, str]]:
    return [(f.severity, f.rule) for f in check_tensorrt(m, version)]


# -- Squeeze / Unsqueeze / CumSum with computed axes ----------------------------------------------


def _squeeze(op: str, x_dims, axes_from: str) -> onnx.ModelProto:
    """x → op(x, axes) with axes from a Constant → Cast ("cast"), from x's shape ("shape":
    Shape(x)[2] + 1 = 2) or from a network input ("input")."""
    nodes, inputs, inits = [], [vi("x", list(x_dims))], []
    if axes_from == "cast":
        nodes += [
            helper.make_node("Constant", [], ["a32"], value=helper.make_tensor("v", 6, [1], [2])),
            helper.make_node("Cast", ["a32"], ["axes"], to=I64),
        ]
    elif axes_from == "shape":
        inits += [const("i2", [2], np.int64), const("one", [1], np.int64)]
        nodes += [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "i2"], ["d2"]),  # dim 2 is 1
            helper.make_node("Add", ["d2", "one"], ["axes"]),
        ]
    else:
        inputs.append(vi("axes", [1], I64))
    nodes.append(helper.make_node(op, ["x", "axes"], ["y"], name="sq"))
    return model(nodes, inputs, [vi("y", None)], inits, opset=13)


@pytest.mark.parametrize("op", ["Squeeze", "Unsqueeze"])
def test_computed_squeeze_axes_are_fine_from_10_7(op):
    """onnx-tensorrt 10.7 changelog: "Added dynamic axes support for Squeeze and Unsqueeze"; the
    10.10 importer feeds the tensor to addSqueeze/addUnsqueeze, which NvInfer.h requires to
    "resolve to a constant"; 10.1 .. 10.6 take an initializer only. check refused every
    computed axes in every version."""
    for axes_from in ("cast", "shape"):
        m = _squeeze(op, [1, 3, 1, 8], axes_from)
        for version in ("10.7", 10, 11):
            assert found(m, version) == [], (axes_from, version)
        assert found(m, "10.6") == [("error", "unsupported-attribute")], axes_from
        assert "initializer" in errors(check_tensorrt(m, "10.6"))[0].message


@pytest.mark.parametrize("op", ["Squeeze", "Unsqueeze"])
def test_squeeze_axes_read_from_an_input_stay_an_error(op):
    m = _squeeze(op, [1, 3, 1, 8], "input")
    for version in ("10.6", "10.7", 10, 11):
        (f,) = errors(check_tensorrt(m, version))
        assert f.rule == "unsupported-attribute" and f.node == "sq", version
    assert "values of 'axes' at run time" in errors(check_tensorrt(m, 10))[0].message


def test_squeeze_axes_from_a_dynamic_shape_are_a_warning():
    m = _squeeze("Squeeze", ["N", 3, 1, 8], "shape")
    assert found(m, 10)[-1] == ("warning", "unsupported-attribute")
    assert errors(check_tensorrt(m, 10, shapes={"x": None})) == []
    assert "dynamic shape of 'x'" in check_tensorrt(m, 10, shapes={"x": None})[0].message


def test_computed_cumsum_axis_is_fine_from_10_8():
    """10.8 changelog: "Added support for dynamic axes ... of CumSum"; the matrix changed from
    "`axis` must be an initializer" (10.7) to "must be a build-time constant" (10.8)."""
    nodes = [
        helper.make_node("Constant", [], ["a32"], value=helper.make_tensor("v", 6, [], [1])),
        helper.make_node("Cast", ["a32"], ["axis"], to=I64),
        helper.make_node("CumSum", ["x", "axis"], ["y"], name="cs"),
    ]
    m = model(nodes, [vi("x", [2, 5])], [vi("y", None)], opset=14)
    assert found(m, "10.8") == [] and found(m, 11) == []
    assert found(m, "10.7") == [("error", "unsupported-attribute")]


def test_onehot_depth_folded_at_build_time_is_fine():
    """importOneHot (10.0, 10.1, 10.10) takes depth as a tensor; NvInfer.h: "The depth tensor
    must be a positive build-time constant". check refused a Constant -> Cast depth."""

    def onehot(depth_from_input: bool) -> onnx.ModelProto:
        nodes = [helper.make_node("OneHot", ["i", "depth", "v"], ["y"], name="oh")]
        inputs, inits = [vi("i", [4], I64)], [const("v", [0.0, 1.0], np.float32)]
        if depth_from_input:
            inputs.append(vi("depth", [], I64))
        else:
            inits.append(const("d32", 5, np.int32))
            nodes.insert(0, helper.make_node("Cast", ["d32"], ["depth"], to=I64))
        return model(nodes, inputs, [vi("y", None)], inits, opset=11)

    assert found(onehot(False), "10.0") == [] and found(onehot(False), 11) == []
    assert found(onehot(True), 10) == [("error", "unsupported-attribute")]


# -- TopK sorted ------------------------------------------------------------------------------


def test_topk_sorted_0_is_a_warning():
    """The matrix says sorted must be 1; importTopK (10.1, 10.10) never reads it."""
    node = helper.make_node("TopK", ["x", "k"], ["y", "i"], name="t", sorted=0)
    m = model(
        [node], [vi("x", [1, 50])], [vi("y", None), vi("i", None, I64)], [const("k", [5], np.int64)]
    )
    assert found(m, 10) == [("warning", "unsupported-attribute")]


# -- outputs the importer does not make -------------------------------------------------------


def test_unnamed_extra_output_slots_are_refused_before_10_6():
    """ModelImporter.cpp 10.1 .. 10.5: node.output().size() <= outputs the importer returns,
    empty names counted; checkMaxPool: node.output().size() == 1. 10.6 counts named ones only."""
    pool = model(
        [helper.make_node("MaxPool", ["x"], ["y", ""], kernel_shape=[2, 2], name="mp")],
        [vi("x", [1, 3, 8, 8])],
        [vi("y", None)],
    )
    assert found(pool, "10.5") == [("error", "unsupported-attribute")]
    assert found(pool, "10.6") == [] and found(pool, 10) == []
    inits = [const("g", np.ones(8, np.float32)), const("b", np.zeros(8, np.float32))]
    ln = helper.make_node("LayerNormalization", ["x", "g", "b"], ["y", "", ""], name="ln")
    norm = model([ln], [vi("x", [1, 4, 8])], [vi("y", None)], inits)
    assert found(norm, "10.4") == [("error", "unsupported-attribute")]
    assert found(norm, 11) == []


def test_batchnorm_named_statistics_output_is_refused():
    """onnxOpCheckers.cpp checkBatchNormalization (10.6 .. 10.10): emptyOutputChecker(..., 1);
    before, ModelImporter's output count. Opset 9 BatchNormalization may name its mean output."""
    c = np.ones(3, np.float32)
    inits = [const(n, c) for n in ("s", "b", "m", "v")]
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "mean"], name="bn")
    m = model([bn], [vi("x", [1, 3, 4, 4])], [vi("y", None)], inits, opset=9)
    for version in ("10.1", 10, 11):
        (f,) = errors(check_tensorrt(m, version))
        assert f.node == "bn" and "'mean'" in f.message, version


# -- opset ------------------------------------------------------------------------------------


def test_opset_above_the_documented_range_is_a_warning_per_version():
    """ModelImporter::importModel refuses no opset; operators.md documents 9..20 (10.0 .. 10.5),
    9..22 (10.6 .. 10.10), 9..24 (10.15)."""
    for opset, version, warned in ((21, "10.5", True), (21, "10.6", False), (23, "10.10", True)):
        m = model(
            [helper.make_node("Relu", ["x"], ["y"])],
            [vi("x", [1, 4])],
            [vi("y", None)],
            opset=opset,
        )
        assert found(m, version) == ([("warning", "opset")] if warned else []), (opset, version)
    high = model(
        [helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 4])], [vi("y", None)], opset=25
    )
    assert found(high, 10) == [("warning", "opset")] and found(high, "11.5") == []


# -- Q/DQ -------------------------------------------------------------------------------------


def _weight_dq(consumer: str, w_shape, axis, attrs=None, n=None) -> onnx.ModelProto:
    """int8 w → DQ(axis) → consumer(x, ·): per-channel scales of length n (w_shape[axis])."""
    w = np.ones(w_shape, np.int8)
    n = n if n is not None else w_shape[axis]
    inits = [
        const("wq", w),
        const("ws", np.full(n, 0.01, np.float32)),
        const("wz", np.zeros(n, np.int8)),
    ]
    dq_attrs = {} if axis is None else {"axis": axis}
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw", **dq_attrs),
        helper.make_node(consumer, ["x", "wd"], ["y"], name="op", **(attrs or {})),
    ]
    x = [1, w_shape[0], 5, 5] if consumer == "ConvTranspose" else [2, w_shape[0]]
    return model(nodes, [vi("x", x)], [vi("y", None)], inits, opset=13)


def test_per_channel_scales_without_an_axis_attribute_are_refused():
    """QuantDequantLinearHelper (10.1, 10.10): attrs.get("axis", nbDims), then "if (axis ==
    inputDims.nbDims) axis = 0": ONNX's default axis is 1. Both models below are valid ONNX
    with axis 1 and were clean."""
    convt = _weight_dq("ConvTranspose", (3, 4, 2, 2), None, n=4)  # C_in 3, C_out 4
    gemm = _weight_dq("Gemm", (3, 4), None, n=4)  # B [K, N], N on axis 1
    for m in (convt, gemm):
        (f,) = errors(check_tensorrt(m, 10))
        assert f.rule == "qdq-per-channel" and f.node == "dqw" and "axis 0" in f.message


def test_convtranspose_weight_axis_0_is_fine_and_axis_1_a_warning():
    """NVIDIA/TensorRT#2380: "the kernels assume per-input-channel quant for ConvTranspose";
    ModelOpt exports axis 0. check called axis 0 an error and axis 1 clean."""
    assert found(_weight_dq("ConvTranspose", (3, 4, 2, 2), 0), 10) == []
    assert found(_weight_dq("ConvTranspose", (3, 4, 2, 2), 1), 10) == [
        ("warning", "qdq-per-channel")
    ]
    assert found(_weight_dq("ConvTranspose", (3, 4, 2, 2), 2, n=2), 10) == [
        ("error", "qdq-per-channel")
    ]


def test_zero_point_cast_from_a_constant_is_fine():
    """NvInfer.h (11.1) IQuantizeLayer: "the only allowed build-time constant zeroPt subgraphs
    are: 1. Constant -> Quantize 2. Constant -> Cast -> Quantize"."""
    nodes = [
        helper.make_node("Cast", ["z32"], ["z"], to=TensorProto.INT8),
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="dq"),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    inits = [const("s", 0.1, np.float32), const("z32", 0, np.int32)]
    m = model(nodes, [vi("x", [1, 4])], [vi("y", None)], inits, opset=13)
    assert errors(check_tensorrt(m, 10)) == []
    inits[1] = const("z32", 2, np.int32)
    nonzero = model(nodes, [vi("x", [1, 4])], [vi("y", None)], inits, opset=13)
    assert {f.rule for f in errors(check_tensorrt(nonzero, 10))} == {"qdq-zero-point"}


def test_infinite_scale_is_a_warning():
    """The parser checks scale > 0 (QuantDequantLinearHelper "Scale coefficients must all be
    positive"), NvInfer.h "strictly positive": +inf passes both."""
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"),
    ]
    inits = [const("s", np.inf, np.float32), const("z", 0, np.int8)]
    m = model(nodes, [vi("x", [1, 4])], [vi("y", None)], inits, opset=13)
    assert found(m, 10) == [("warning", "qdq-scale"), ("warning", "qdq-scale")]
