"""Adversarial review of the built-in fusion rules (patterns/*.yaml, graphopt/patterns/compute.py):
models that pass onnx's full check and made a rule's computation raise (a PassError naming a
numpy ValueError, no output) where the rule must refuse and leave the site as it is."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from tests.fusion_models import build, explained, feeds, ops, run_at, run_passes

RNG = np.random.default_rng(151)
CONV_W = RNG.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
CONV_CLIP = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1,3,6,6] x) => (float[1,4,4,4] z) {
  y = Conv(x, W)
  z = Clip(y, lo, hi)
}"""


def test_a_clip_bound_of_two_elements_does_not_fuse_into_fusedconv():
    """Clip(Conv(x, W), lo, hi) with lo of shape [2] passes onnx's full check (no runtime runs
    it: a bound must be one element); fusedconv-clip's clip_params raised ValueError ("cannot
    reshape array of size 2 into shape ()"), so `optimize(..., "ort-fusions")` failed. The
    rule refuses it and the model comes back as it was."""
    model = build(
        CONV_CLIP,
        {"W": CONV_W, "lo": np.array([-1.0, 0.0], np.float32), "hi": np.array(1.0, np.float32)},
    )
    out, report = run_passes(model, ["fuse-ort-contrib"])
    assert ops(out) == ["Conv", "Clip"]
    (reason,) = explained(report, "fusedconv-clip", "refused")
    assert "Clip's min has shape [2], not one element" in reason
    assert ops(graphopt.optimize(model, "ort-fusions")) == ["Conv", "Clip"]


def test_a_one_element_clip_bound_of_rank_one_still_fuses():
    """The control: a bound of shape [1] is one element; it fuses, outputs unchanged."""
    model = build(
        CONV_CLIP,
        {"W": CONV_W, "lo": np.array([-1.0], np.float32), "hi": np.array([1.5], np.float32)},
    )
    out = graphopt.optimize(model, "ort-fusions")
    assert ops(out) == ["com.microsoft.FusedConv"]
    inputs = feeds(model)
    np.testing.assert_allclose(
        run_at(out, inputs, "disable")["z"], run_at(model, inputs, "disable")["z"], rtol=1e-5
    )


def _gemm_bn(c: np.ndarray) -> onnx.ModelProto:
    """Gemm(a [3, 5], B [5, 4], C) → BatchNormalization over its 4 columns."""
    return build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[3,5] a) => (float[3,4] z) {
          y = Gemm(a, B, C)
          z = BatchNormalization(y, gamma, beta, mean, var)
        }""",
        {
            "B": RNG.uniform(-1, 1, (5, 4)).astype(np.float32),
            "C": c,
            "gamma": np.array([0.5, 1.0, 1.5, 2.0], np.float32),
            "beta": np.array([0.1, -0.1, 0.2, -0.2], np.float32),
            "mean": np.array([0.0, 0.3, -0.3, 0.1], np.float32),
            "var": np.array([1.0, 0.5, 2.0, 0.25], np.float32),
        },
    )


@pytest.mark.parametrize("shape", [(3,), (3, 2)])
def test_a_gemm_bias_that_does_not_broadcast_to_its_columns_is_not_folded(shape):
    """Gemm's C of shape [3] (or [3, 2]) for a [3, 4] output passes onnx's full check (its
    inference does not look at C); fold_batchnorm_gemm raised ValueError ("operands could not
    be broadcast together with shapes (4,) (3,)") and `optimize` failed with a PassError. The
    rule refuses it; the Gemm and the BatchNormalization stay."""
    model = _gemm_bn(np.ones(shape, np.float32))
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Gemm", "BatchNormalization"]
    (reason,) = explained(report, "fold-batchnorm-gemm", "refused")
    assert f"Gemm C of shape {list(shape)} does not broadcast to its 4 columns" in reason
    assert ops(graphopt.optimize(model, "default")) == ["Gemm", "BatchNormalization"]


@pytest.mark.parametrize("shape", [(4,), (1, 4), (3, 1), (3, 4), (1,)])
def test_a_gemm_bias_of_every_valid_shape_still_folds(shape):
    """The control: every C onnxruntime's Gemm accepts for a [3, 4] output folds, outputs
    unchanged."""
    model = _gemm_bn(RNG.uniform(-1, 1, shape).astype(np.float32))
    out = graphopt.optimize(model, "default")
    assert ops(out) == ["Gemm"]
    inputs = feeds(model)
    np.testing.assert_allclose(
        run_at(out, inputs, "disable")["z"],
        run_at(model, inputs, "disable")["z"],
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(("first", "second"), [("Mul", "Mul"), ("Add", "Sub"), ("Div", "Mul")])
def test_constants_that_do_not_broadcast_together_are_not_merged(first, second):
    """(x ∘ a) ∘ b with a [3], b [4] and x of unknown rank (a Reshape to a shape given at run
    time) passes onnx's full check (nothing infers x·a's shape), though no runtime runs it;
    `combine` raised ValueError and `optimize` failed. merge-* refuses it; the model stays."""
    nodes = [
        helper.make_node("Reshape", ["x0", "shape"], ["x"]),
        helper.make_node(first, ["x", "a"], ["t"]),
        helper.make_node(second, ["t", "b"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x0", onnx.TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("shape", onnx.TensorProto.INT64, ["k"]),
        ],
        [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["d"])],
        [
            numpy_helper.from_array(np.full(3, 2.0, np.float32), "a"),
            numpy_helper.from_array(np.full(4, 0.5, np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Reshape", first, second]
    reasons = [r for rule, _node, outcome, r in report.explain if outcome == "refused"]
    assert any("constants of shapes" in r and "do not broadcast" in r for r in reasons), reasons
    assert ops(graphopt.optimize(model, "default")) == ["Reshape", first, second]


BN_STANDALONE = """<ir_version: 8, opset_import: ["" : 15]>
g ({x}[2,4,3,3] x) => ({x}[2,4,3,3] y) {{
  y = BatchNormalization(x, gamma, beta, mean, var)
}}"""


def _bn_params(dtype: type) -> dict[str, np.ndarray]:
    return {
        "gamma": np.array([0.5, 1.0, 1.5, 2.0], dtype),
        "beta": np.array([0.1, -0.1, 0.2, -0.2], dtype),
        "mean": np.array([0.0, 0.3, -0.3, 0.1], dtype),
        "var": np.array([1.0, 0.5, 2.0, 0.25], dtype),
    }


@pytest.mark.parametrize(
    ("x_type", "params"), [("float16", np.float32), ("float", np.float16)], ids=["x16", "x32"]
)
def test_a_batchnorm_with_parameters_of_another_type_stays_a_batchnorm(x_type, params):
    """From opset 15 BatchNormalization's X (T) and its γ, β (T1), μ, σ² (T2) may differ: a
    mixed-precision export has float16 X and float32 parameters, and onnxruntime runs it.
    batchnorm-to-mul-add made x·s + t with s, t of the parameters' type: Mul(float16,
    float32), which fails onnx's full check and that no onnxruntime session loads. It refuses."""
    from graphopt.passes.fuse_patterns import FusePatterns

    model = build(BN_STANDALONE.format(x=x_type), _bn_params(params))
    out, report = run_passes(model, [FusePatterns(groups=["batchnorm-standalone"])])
    assert ops(out) == ["BatchNormalization"]
    (reason,) = explained(report, "batchnorm-to-mul-add", "refused")
    assert "x·s + t would mix types" in reason
    inputs = feeds(model)
    np.testing.assert_array_equal(
        run_at(out, inputs, "disable")["y"], run_at(model, inputs, "disable")["y"]
    )


def test_a_batchnorm_with_parameters_of_its_type_still_becomes_mul_add():
    """The control: X and the parameters float16 alike: x·s + t, outputs unchanged."""
    from graphopt.passes.fuse_patterns import FusePatterns

    model = build(BN_STANDALONE.format(x="float16"), _bn_params(np.float16))
    out, _ = run_passes(model, [FusePatterns(groups=["batchnorm-standalone"])])
    assert ops(out) == ["Mul", "Add"]
    inputs = feeds(model)
    np.testing.assert_allclose(
        run_at(out, inputs, "disable")["y"].astype(np.float32),
        run_at(model, inputs, "disable")["y"].astype(np.float32),
        rtol=2e-3,
        atol=4e-3,
    )


ROI_ALIGN = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1,4,8,8] x) => (float[1,4,2,2] z) {{
  {activation}
  z = RoiAlign <output_height = 2, output_width = 2> (s, rois, batch)
}}"""
ROI_INPUTS = {"rois": np.array([[0, 0, 4, 4]], np.float32), "batch": np.array([0], np.int64)}


def _upgraded_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """`optimize(model, upgrade_opset=True)`, and both models' outputs (optimizations off)."""
    out = graphopt.optimize(model, "default", upgrade_opset=True)
    onnx.checker.check_model(out, full_check=True)
    x = {"x": np.linspace(-4, 4, 256, dtype=np.float32).reshape(1, 4, 8, 8)}
    return out, run_at(model, x, "disable")["z"], run_at(out, x, "disable")["z"]


def test_no_upgrade_to_an_opset_where_onnxruntime_lacks_a_kernel_of_the_model():
    """x·σ(x) before a RoiAlign at opset 13, optimize(upgrade_opset=True): the model was
    converted to Swish's opset 24, which onnxruntime 1.32 loads, but its RoiAlign became
    RoiAlign-22, for which it has no kernel ("Could not find an implementation for
    RoiAlign(22)"): a model no session loads. The upgrade is refused where the converted model
    does not load and the original does; the model stays at opset 13, outputs unchanged."""
    model = build(ROI_ALIGN.format(activation="t = Sigmoid(x)\n  s = Mul(x, t)"), dict(ROI_INPUTS))
    out, want, got = _upgraded_outputs(model)
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [13]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_an_upgrade_whose_model_loads_still_happens():
    """The control: x·relu6(x + 3)/6 before a RoiAlign, upgraded to HardSwish's opset 14
    (RoiAlign-16 has a kernel): upgraded and fused, outputs unchanged."""
    activation = "a = Add(x, three)\n  r = Clip(a, zero, six)\n  m = Mul(x, r)\n  s = Div(m, six)"
    consts = {k: np.array(v, np.float32) for k, v in (("three", 3), ("zero", 0), ("six", 6))}
    model = build(ROI_ALIGN.format(activation=activation), {**ROI_INPUTS, **consts})
    out, want, got = _upgraded_outputs(model)
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [14]
    assert ops(out) == ["HardSwish", "RoiAlign"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


SHIFTS = """<ir_version: 8, opset_import: ["" : 13]>
g ({t}[64] x) => ({t}[64] y) {{
  s = Add(x, a)
  y = Sub(s, b)
}}"""


@pytest.mark.parametrize(
    ("dtype", "a", "b"),
    [
        (np.float32, 12582912.0, 12582912.0),  # 1.5·2²³: round(x) to an integer, half to even
        (np.float32, 1e30, 1e30),
        (np.float16, 1024.0, 1024.0),  # float16's magic number: its ulp at 1024 is 1
        (np.float64, 6755399441055744.0, 6755399441055744.0),  # 1.5·2⁵²
    ],
)
def test_shifts_that_cancel_are_not_merged(dtype, a, b):
    """(x + a) − b with b = a: the original rounds x + a to an ulp of a before b takes it back
    (the magic-number rounding: round(x) in float32 for a = 1.5·2²³; 0 for data of scale 4
    and a = 1e30). merge-add-sub made x + (a − b) = x + 0: the output became x, off by up to
    ½ (and by all of x where a = 1e30). It refuses where the shifts cancel more than half the
    significand's bits; the model computes what it did."""
    t = {np.float32: "float", np.float16: "float16", np.float64: "double"}[dtype]
    model = build(SHIFTS.format(t=t), {"a": np.array(a, dtype), "b": np.array(b, dtype)})
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Add", "Sub"]
    (reason,) = explained(report, "merge-add-sub", "refused")
    assert "the shifts cancel" in reason
    x = {"x": np.linspace(-4, 4, 64).astype(dtype)}
    want = run_at(model, x, "disable")["y"]
    for pipeline in ("default", "tensorrt", "ort-fusions"):
        result = graphopt.optimize(model, pipeline)
        np.testing.assert_array_equal(run_at(result, x, "disable")["y"], want, err_msg=pipeline)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_shifts_that_do_not_cancel_still_merge(dtype):
    """The control: (x + 3) − 1 merges to x + 2 (and (x + 1000) − 999 in float32: 1 keeps
    all but 10 of its 24 bits), outputs within an ulp of the shift."""
    t = "float" if dtype == np.float32 else "float16"
    cases = [(3.0, 1.0)] + ([(1000.0, 999.0)] if dtype == np.float32 else [])
    for a, b in cases:
        model = build(SHIFTS.format(t=t), {"a": np.array(a, dtype), "b": np.array(b, dtype)})
        out = graphopt.optimize(model, "default")
        assert ops(out) == ["Add"]
        x = {"x": np.linspace(-4, 4, 64).astype(dtype)}
        np.testing.assert_allclose(
            run_at(out, x, "disable")["y"].astype(np.float64),
            run_at(model, x, "disable")["y"].astype(np.float64),
            rtol=0,
            atol=float(np.spacing(np.asarray(a, dtype))),
        )


def test_a_conv_rounded_by_a_magic_number_keeps_its_rounding():
    """Conv(x, W) + M − M with M = 1.5·2²³ rounds the conv's output to integers (float32).
    fold-add-into-conv folded M into the bias and fold-sub-into-conv folded −M back out:
    Conv(x, W, 0), the rounding gone (outputs up to ½ off). The second fold now refuses
    (bias and shift cancel, as merge-* refuses); the outputs stay integers."""
    magic = np.array(12582912.0, np.float32)
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,6,6] x) => (float[1,4,4,4] z) {
          y = Conv(x, W)
          s = Add(y, M)
          z = Sub(s, M)
        }""",
        {"W": CONV_W, "M": magic},
    )
    x = {"x": np.linspace(-4, 4, 108, dtype=np.float32).reshape(1, 3, 6, 6)}
    want = run_at(model, x, "disable")["z"]
    assert np.array_equal(want, np.round(want)) and np.abs(want).max() > 2
    for pipeline in ("default", "tensorrt", "ort-fusions"):
        got = run_at(graphopt.optimize(model, pipeline), x, "disable")["z"]
        assert np.array_equal(got, np.round(got)), pipeline
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=pipeline)


def test_an_input_rounded_by_a_magic_number_is_not_folded_into_the_conv():
    """Conv((x + M) − M, W, B) with M = 1.5·2²³: the input rounded to integers, then a Conv.
    merge-add-sub refuses the shifts (they cancel), but fold-input-sub-into-conv then folded
    − M into the bias (Conv(x + M, W, B − Σ W·M): a sum of M's scale against a bias of −Σ W·M)
    and fold-input-add-into-conv + M back: one Conv, outputs off by up to 1.67 on a scale of
    20. The input fold refuses a shift that cancels the Add or Sub producing its input."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,6,6] x) => (float[1,4,4,4] z) {
          s = Add(x, M)
          t = Sub(s, M)
          z = Conv(t, W, B)
        }""",
        {"W": CONV_W, "B": np.array([0.3, -0.2, 0.1, 0.0], np.float32),
         "M": np.array(12582912.0, np.float32)},
    )  # fmt: skip
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Add", "Sub", "Conv"]
    (reason,) = explained(report, "fold-input-sub-into-conv", "refused")
    assert "the shifts cancel" in reason
    x = {"x": np.linspace(-4, 4, 108, dtype=np.float32).reshape(1, 3, 6, 6)}
    want = run_at(model, x, "disable")["z"]
    for pipeline in ("default", "tensorrt", "ort-fusions"):
        got = run_at(graphopt.optimize(model, pipeline), x, "disable")["z"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=pipeline)


def test_an_input_shift_that_does_not_cancel_still_folds():
    """The control: Conv((x + 3) − 0.5, W) (3 and −0.5 do not cancel) becomes one Conv."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,6,6] x) => (float[1,4,4,4] z) {
          s = Add(x, k)
          t = Sub(s, h)
          z = Conv(t, W)
        }""",
        {"W": CONV_W, "k": np.array(3.0, np.float32), "h": np.array(0.5, np.float32)},
    )
    out = graphopt.optimize(model, "default")
    assert ops(out) == ["Conv"]
    x = {"x": np.linspace(-4, 4, 108, dtype=np.float32).reshape(1, 3, 6, 6)}
    np.testing.assert_allclose(
        run_at(out, x, "disable")["z"], run_at(model, x, "disable")["z"], rtol=1e-5, atol=1e-5
    )
