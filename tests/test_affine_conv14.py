"""Learnable affine blocks before a Conv (PP-LCNetV3: PP-OCRv4/v5 det): y = a·x + b read by a
Conv folds into it, Conv(a·x + b, W, B) ⇒ Conv(x, W·a, B + Σ W·b), by fold-input-add-into-conv
(the shift, only where the Conv pads nothing) and fold-input-mul-into-conv (the scale, padded or
not), a and b one element or one per input channel; group Convs read channel
(o ÷ (C_out/g))·(C_in/g) + j. Each case runs the original and the rewrite in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.api import optimize_with_report
from graphopt.backends.onnxruntime import run, session
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, explained, feeds, ops, rand, run_passes

ADD, MUL = "fold-input-add-into-conv", "fold-input-mul-into-conv"


def affine_conv(
    conv: str,
    a: np.ndarray,
    b: np.ndarray,
    w: np.ndarray,
    x_shape: str = "1,4,6,6",
    z_shape: str = "1,6,6,6",
    dtype: str = "float",
    bias: np.ndarray | None = None,
    order: str = "Mul(x, a)",
    add: str = "Add(y, b)",
) -> onnx.ModelProto:
    """x → a·x + b → `conv` (its attributes) with weight `w` (and `bias`)."""
    inits = {"W": w, "a": a, "b": b}
    if bias is not None:
        inits["B"] = bias
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g ({dtype}[{x_shape}] x) => ({dtype}[{z_shape}] z) {{
          y = {order}
          s = {add}
          z = Conv{conv}(s, W{", B" if bias is not None else ""})
        }}""",
        inits,
    )


@pytest.mark.parametrize(("order", "add"), [("Mul(x, a)", "Add(y, b)"), ("Mul(a, x)", "Add(b, y)")])
@pytest.mark.parametrize("bias", [True, False])
def test_scalar_affine_block_before_a_1x1_conv_folds(order, add, bias):
    """The PP-OCRv4 det block: a, b of shape [1] (paddle2onnx), a 1×1 Conv without padding."""
    model = affine_conv(
        "<kernel_shape = [1, 1]>",
        np.array([1.7], np.float32),
        np.array([-0.3], np.float32),
        rand(6, 4, 1, 1),
        bias=rand(6) if bias else None,
        order=order,
        add=add,
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, ADD, "applied") == [""]
    assert explained(report, MUL, "applied") == [""]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    ("conv", "w_shape", "x_shape", "z_shape"),
    [
        ("<strides = [2]>", (6, 4, 3), "1,4,9", "1,6,4"),  # 1-D
        ("<dilations = [2, 2], strides = [2, 2]>", (6, 4, 3, 3), "1,4,9,9", "1,6,3,3"),
        ('<auto_pad = "VALID">', (6, 4, 3, 3), "1,4,6,6", "1,6,4,4"),
        ('<auto_pad = "SAME_UPPER", strides = [2, 2]>', (6, 4, 1, 1), "1,4,7,7", "1,6,4,4"),
        ("<pads = [0, 0, 0, 0, 0, 0]>", (6, 4, 2, 1, 3), "1,4,3,3,5", "1,6,2,3,3"),  # 3-D
    ],
)
def test_scalar_affine_block_before_any_unpadded_conv_folds(conv, w_shape, x_shape, z_shape):
    """Strides, dilations, 1-D and 3-D kernels do not matter to the algebra; a SAME 1×1 kernel
    pads nothing at any size and stride."""
    model = affine_conv(
        conv,
        np.array(0.6, np.float32),
        np.array(0.25, np.float32),
        rand(*w_shape),
        x_shape=x_shape,
        z_shape=z_shape,
        bias=rand(6),
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, ADD, "applied") == explained(report, MUL, "applied") == [""]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("group", [1, 2, 4])
@pytest.mark.parametrize("layout", [(4, 1, 1), (1, 4, 1, 1)])
def test_per_channel_affine_block_folds_into_a_group_conv(group, layout):
    """a and b per input channel: each weight W[o, j] takes the a and b of the channel it
    reads, (o ÷ (C_out/g))·(C_in/g) + j (group 4 of 4 channels: a depthwise-style Conv with
    two outputs per channel)."""
    a = rand(4, low=0.5, high=2.0).reshape(layout)
    b = rand(4).reshape(layout)
    model = affine_conv(
        f"<group = {group}, strides = [1, 1]>",
        a,
        b,
        rand(8, 4 // group, 3, 3),
        z_shape="1,8,4,4",
        bias=rand(8),
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, ADD, "applied") == explained(report, MUL, "applied") == [""]
    assert_same_outputs(model, out, feeds(model))
    # the channels really differ: a folded with the wrong channel order would not match
    assert len(set(a.ravel().tolist())) == 4 and len(set(b.ravel().tolist())) == 4


def test_affine_block_before_a_padded_conv_stays():
    """With padding the border outputs would get b·(part of Σ W): the shift is refused, and
    the scale, behind the Add, stays with it (PP-OCRv4 det's depthwise 3×3 and 5×5 Convs)."""
    model = affine_conv(
        "<pads = [1, 1, 1, 1], group = 4>",
        np.array([1.5], np.float32),
        np.array([0.5], np.float32),
        rand(4, 1, 3, 3),
        z_shape="1,4,6,6",
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Mul", "Add", "Conv"]
    (why,) = explained(report, ADD, "refused")
    assert why.startswith("conv_unpadded: ") and "pads its input (pads [1, 1, 1, 1])" in why
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_shift_before_a_same_padded_3x3_conv_stays(auto_pad):
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[1,6,6,6] z) {{
          s = Add(x, b)
          z = Conv<auto_pad = "{auto_pad}">(s, W)
        }}""",
        {"W": rand(6, 4, 3, 3), "b": np.array(0.5, np.float32)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Add", "Conv"]
    (why,) = explained(report, ADD, "refused")
    assert why.startswith("conv_unpadded: ") and why.endswith(
        f"pads its input (auto_pad {auto_pad})"
    )


@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize("op", ["Mul", "Div"])
def test_per_channel_scale_before_a_padded_conv_folds(group, op):
    """The scale alone folds with padding (a·0 = 0): per input channel now, not only one
    element."""
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[1,8,6,6] z) {{
          y = {op}(x, a)
          z = Conv<pads = [1, 1, 1, 1], group = {group}>(y, W, B)
        }}""",
        {"W": rand(8, 4 // group, 3, 3), "B": rand(8), "a": rand(1, 4, 1, 1, low=0.5, high=2)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, f"fold-input-{op.lower()}-into-conv", "applied") == [""]
    assert_same_outputs(model, out, feeds(model))


def test_shift_subtracted_before_an_unpadded_conv_folds():
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[1,6,6,6] z) {
          s = Sub(x, b)
          z = Conv(s, W, B)
        }""",
        {"W": rand(6, 4, 1, 1), "B": rand(6), "b": rand(4, 1, 1)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, "fold-input-sub-into-conv", "applied") == [""]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("reader", ["Relu(s)", "Conv(s, V)"])
def test_affine_block_read_elsewhere_stays(reader):
    """a·x + b read by a second node (a Relu, or a second 1×1 Conv) stays: folding it into one
    Conv would still leave it computed for the other. (PP-OCRv4 det's blocks read by two
    Convs have a padded depthwise one among them, which could not take the shift anyway.)"""
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[1,6,6,6] z, float[1,4,6,6] r) {{
          y = Mul(x, a)
          s = Add(y, b)
          z = Conv(s, W)
          r = {reader}
        }}""",
        {
            "W": rand(6, 4, 1, 1),
            "V": rand(4, 4, 1, 1),
            "a": np.array([1.5], np.float32),
            "b": np.array([0.5], np.float32),
        },
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out)[:3] == ["Mul", "Add", "Conv"]
    reasons = explained(report, ADD, "refused")
    assert reasons and all(r.startswith("intermediate s is also used by ") for r in reasons)
    assert_same_outputs(model, out, feeds(model))


def test_scale_or_shift_not_constant_stays():
    """A scale or shift fed as a graph input stays where it is: in the first block only the
    constant shift folds (the Mul by input a stays), in the second nothing does (the Add of
    input b keeps the constant scale from its Conv)."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x, float[1] a, float[1] b) => (float[1,6,6,6] z, float[1,6,6,6] z2) {
          y = Mul(x, a)
          s = Add(y, c)
          z = Conv(s, W)
          y2 = Mul(x, k)
          s2 = Add(y2, b)
          z2 = Conv(s2, W)
        }""",
        {"W": rand(6, 4, 1, 1), "c": np.array([0.5], np.float32), "k": np.array([1.5], np.float32)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert sorted(ops(out)) == ["Add", "Conv", "Conv", "Mul", "Mul"]
    (add,) = [n for n in out.graph.node if n.op_type == "Add"]
    assert "b" in add.input  # the one that stays reads input b
    assert explained(report, ADD, "applied") == [""]
    assert not explained(report, MUL, "applied")
    assert_same_outputs(model, out, feeds(model))


def test_per_channel_scale_of_an_x_with_one_channel_stays():
    """x of one channel times a per-channel [1, 4, 1, 1] makes four: the Conv reads four, so
    folding the scale into W would leave it reading one. The shift after it folds (y has
    four channels), the scale is refused."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,1,6,6] x) => (float[1,6,6,6] z) {
          y = Mul(x, a)
          s = Add(y, b)
          z = Conv(s, W)
        }""",
        {"W": rand(6, 4, 1, 1), "a": rand(1, 4, 1, 1), "b": rand(1, 4, 1, 1)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Mul", "Conv"]
    assert explained(report, ADD, "applied") == [""]
    assert explained(report, MUL, "refused") == [
        "cannot prove that x has 4 channels ((1, 1, 6, 6)): a per-channel "
        "constant could broadcast its channels"
    ]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("per_channel", [False, True])
def test_float16_affine_block_folds_in_float16(per_channel):
    shape = (1, 4, 1, 1) if per_channel else (1,)
    model = affine_conv(
        "",
        rand(*shape, low=0.5, high=2.0, dtype=np.float16),
        rand(*shape, dtype=np.float16),
        rand(6, 4, 1, 1, dtype=np.float16),
        dtype="float16",
        bias=rand(6, dtype=np.float16),
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert {t.data_type for t in out.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert_same_outputs(model, out, feeds(model), rtol=2e-2, atol=2e-2)


def test_shift_folds_in_float64_and_rounds_once():
    """B + Σ W·b summed in float64 and cast once: the folded bias is the float64 result
    rounded, bit for bit."""
    w = rand(6, 4, 1, 1)
    a, b, bias = np.array([0.7], np.float32), np.array([0.3], np.float32), rand(6)
    model = affine_conv("", a, b, w, bias=bias)
    out, _ = run_passes(model, ["fold-batchnorm"])
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in out.graph.initializer}
    conv = out.graph.node[0]
    w2, b2 = inits[conv.input[1]], inits[conv.input[2]]
    exact_b = bias.astype(np.float64) + (w.astype(np.float64) * float(b[0])).sum(axis=(1, 2, 3))
    np.testing.assert_array_equal(b2, exact_b.astype(np.float32))
    np.testing.assert_array_equal(w2, (w.astype(np.float64) * float(a[0])).astype(np.float32))


# ---------------------------------------------------------------------------- PP-OCRv4 det


@pytest.mark.realmodel
def test_ppocr_det_affine_blocks_fold(real_model, real_feeds):
    """rapidocr's PP-OCRv4 det has 24 learnable affine blocks after an activation; 10 sit
    before a 1×1 Conv that pads nothing and is their only reader: those fold (221 → 201 nodes
    in the default pipeline). The others precede padded depthwise Convs (or a pool) and stay.
    Outputs match the original on real photos within 1e-4 of max |output|."""
    path = real_model("ppocr_det")
    original = onnx.load(str(path))
    optimized, report = optimize_with_report(path)
    counts = report.totals()["fold-batchnorm"]
    assert counts[f"rule:{ADD}"] == 10 and counts[f"rule:{MUL}"] == 10
    assert len(optimized.graph.node) == 201
    reference, candidate = session(original), session(optimized)
    for feed in real_feeds("ppocr_det", 2):
        a, b = run(reference, feed), run(candidate, feed)
        for out in a:
            scale = float(np.max(np.abs(a[out])))
            assert scale > 0
            assert float(np.max(np.abs(a[out].astype(np.float64) - b[out]))) / scale <= 1e-4


@pytest.mark.parametrize(
    ("c", "why"),
    [
        # [4] right-aligns with x's width, not its channels
        (
            np.array([0.5, 1.0, 1.5, 2.0], np.float32),
            "constant of shape [4] is not per input channel",
        ),
        (np.array([0.5, 0.0, 1.5, 2.0], np.float32).reshape(4, 1, 1), "is zero or not finite"),
    ],
)
def test_scales_that_are_not_per_input_channel_or_zero_stay(c, why):
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,4,4] x) => (float[1,6,4,4] z) {
          y = Mul(x, c)
          z = Conv(y, W)
        }""",
        {"W": rand(6, 4, 1, 1), "c": c},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Mul", "Conv"]
    (reason,) = explained(report, MUL, "refused")
    assert why in reason
    assert_same_outputs(model, out, feeds(model))
