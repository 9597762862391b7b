"""Regressions found by the rule fuzz (tests/test_h127_rule_fuzz.py), minimised: each model
runs in onnxruntime before and after the built-in pipelines, outputs compared."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, feeds, ops
from tests.test_h127_rule_fuzz import _run


def _same_outputs(
    model: onnx.ModelProto, out: onnx.ModelProto, rtol: float, inputs: dict | None = None
) -> None:
    inputs = inputs or feeds(model)
    want, got = _run(model, inputs), _run(out, inputs)
    for name, a in want.items():
        b = got[name]
        np.testing.assert_array_equal(np.isnan(b), np.isnan(a), err_msg=f"{name}: NaN pattern")
        finite = np.isfinite(a)
        np.testing.assert_array_equal(b[~finite], a[~finite], err_msg=name)
        scale = float(np.abs(a[finite]).max()) if finite.any() else 0.0
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * scale, err_msg=name)


WEIGHT = np.random.default_rng(127).uniform(-1, 1, (2, 3, 3, 3)).astype(np.float32)
INF_SCALE = {
    "Mul by inf": ("z = Mul(y, k)", {"k": np.array([np.inf], np.float32)}),
    "Mul by -inf in one channel": (
        "z = Mul(k, y)",
        {"k": np.array([1.0, -np.inf], np.float32).reshape(1, 2, 1, 1)},
    ),
    "BatchNormalization γ inf": (
        "z = BatchNormalization(y, g, b, m, v)",
        {
            # (B − μ)·s + β stays ±inf, not NaN: the parent folded it
            "g": np.array([0.7, np.inf], np.float32),
            "b": np.array([0.2, -0.1], np.float32),
            "m": np.array([0.1, -0.2], np.float32),
            "v": np.array([0.5, 1.0], np.float32),
        },
    ),
}


@pytest.mark.parametrize("pipeline", ["default", "tensorrt", "ort-fusions"])
@pytest.mark.parametrize("case", sorted(INF_SCALE))
def test_an_infinite_scale_does_not_fold_into_a_conv(case, pipeline):
    """Conv(x, W)·inf is ±inf; folded, W·inf holds +inf and −inf, whose sum is NaN (fuzz seeds
    2319, 2266: every output NaN). The scale stays outside the Conv."""
    step, consts = INF_SCALE[case]
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,5,5] x) => (float[1,2,3,3] z) {{
          y = Conv(x, W, B)
          {step}
        }}""",
        {"W": WEIGHT, "B": np.array([0.3, 0.4], np.float32), **consts},
    )
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    assert len(ops(out)) == 2
    _same_outputs(model, out, 1e-4)


@pytest.mark.parametrize("pipeline", ["default", "tensorrt", "ort-fusions"])
def test_an_infinite_batchnorm_scale_does_not_fold_into_a_gemm(pipeline):
    """Gemm → BatchNormalization with γ = −inf in one column (fuzz seed 722, float16): the
    folded B·s sums +inf and −inf to NaN where the original's y·s is −inf (its terms
    a·W = 0.58, −0.18, 0.13 have mixed signs, their sum y > 0)."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 15]>
        g (float16[3,4] a) => (float16[4,3] z) {
          y = Gemm<transA = 1, alpha = 2.0>(a, W, C)
          z = BatchNormalization(y, g, b, m, v)
        }""",
        {
            "W": WEIGHT[0, 0].astype(np.float16),
            "C": np.array(0.5, np.float16),
            # s·C + β − μ·s stays −inf, not NaN: the parent folded it
            "g": np.array([1.4, -np.inf, 0.7], np.float16),
            "b": np.array([0.1, 0.2, 0.3], np.float16),
            "m": np.array([0.2, -0.3, 0.1], np.float16),
            "v": np.array([0.5, 1.0, 2.0], np.float16),
        },
    )
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    a = np.repeat(np.array([[-1.0], [0.5], [0.2]], np.float16), 4, axis=1)
    _same_outputs(model, out, 2e-2, {"a": a})


def test_float64_gelu_tanh_keeps_its_precision_in_ort_fusions():
    """½x(1 + tanh(√(2/π)(x + 0.044715x³))) in float64 (fuzz seeds 140, 399): onnxruntime's
    float64 FastGelu is float32-accurate (3.5e-8 of the output's scale), so ort-fusions keeps
    the exact decomposition there (float32 still becomes FastGelu)."""
    text = """<ir_version: 8, opset_import: ["" : 13]>
        g ({t}[2,50] x) => ({t}[2,50] y) {{
          x2 = Mul(x, x)
          x3 = Mul(x2, x)
          c = Mul(x3, k)
          i = Add(x, c)
          s = Mul(i, r)
          t = Tanh(s)
          e = Add(t, one)
          h = Mul(x, half)
          y = Mul(h, e)
        }}"""
    for t, dtype, fused in (("double", np.float64, False), ("float", np.float32, True)):
        consts = {"k": 0.044715, "r": np.sqrt(2 / np.pi), "one": 1.0, "half": 0.5}
        model = build(text.format(t=t), {k: np.array(v, dtype) for k, v in consts.items()})
        out = graphopt.optimize(model, "ort-fusions")
        assert ("com.microsoft.FastGelu" in ops(out)) == fused, ops(out)
        _same_outputs(model, out, 1e-12 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("pipeline", ["default", "tensorrt", "ort-fusions"])
@pytest.mark.parametrize("form", ["hardsigmoid", "hardswish", "hardsigmoid-affine"])
def test_float64_hardswish_keeps_its_precision(form, pipeline):
    """relu6(x + 3)/6 (and x times it, clip(αx + β, 0, 1)) in float64 at opset 18 (fuzz seed
    517): HardSigmoid's α, β are float32 attributes, so onnxruntime's float64 HardSigmoid and
    HardSwish, which load at opset 18, compute x·float32(1/6), 1.5e-8 of the scale off where
    the decomposition is exact. A float64 model keeps the decomposition; float32 still fuses."""
    body = {
        "hardsigmoid": "y = Div(c, six)",
        "hardswish": "h = Div(c, six)\n          y = Mul(x, h)",
        "hardsigmoid-affine": "s = Mul(x, a)\n          t = Add(s, b)\n          y = Clip(t, zero, one)",
    }[form]
    text = """<ir_version: 8, opset_import: ["" : 18]>
        g ({t}[2,50] x) => ({t}[2,50] y) {{
          p = Add(x, three)
          c = Clip(p, zero, six)
          {body}
        }}"""
    consts = {"three": 3.0, "zero": 0.0, "six": 6.0, "one": 1.0, "a": 0.2, "b": 0.5}
    for t, dtype, fused in (("double", np.float64, False), ("float", np.float32, True)):
        model = build(
            text.format(t=t, body=body), {k: np.array(v, dtype) for k, v in consts.items()}
        )
        out = graphopt.optimize(model, pipeline)
        onnx.checker.check_model(out, full_check=True)
        made = {"HardSigmoid", "HardSwish"} & set(ops(out))
        assert bool(made) == fused, ops(out)
        _same_outputs(model, out, 1e-12 if dtype == np.float64 else 1e-4)


F16_FORMS = {
    "gelu": (
        20,
        "Gelu",
        """d = Mul(x, r)
          e = Erf(d)
          p = Add(e, one)
          h = Mul(x, half)
          y = Mul(h, p)""",
        {"r": 1 / np.sqrt(2), "one": 1.0, "half": 0.5},
    ),
    "gelu-tanh": (
        20,
        "Gelu",
        """c = Pow(x, three)
          k = Mul(c, a)
          i = Add(x, k)
          s = Mul(i, r)
          t = Tanh(s)
          e = Add(t, one)
          h = Mul(x, half)
          y = Mul(h, e)""",
        {"three": 3.0, "a": 0.044715, "r": np.sqrt(2 / np.pi), "one": 1.0, "half": 0.5},
    ),
    "hardswish": (
        14,
        "HardSwish",
        """a = Add(x, three)
          c = Clip(a, zero, six)
          m = Mul(x, c)
          y = Mul(m, sixth)""",
        {"three": 3.0, "zero": 0.0, "six": 6.0, "sixth": 1 / 6},
    ),
}


@pytest.mark.parametrize("form", sorted(F16_FORMS))
def test_float16_constants_match_the_rules_literals(form):
    """A float16 model holds 1/√2, √(2/π), 0.044715 and 1/6 one rounding off (1e-4 to 2e-4),
    beyond the literals' 1e-5: its decomposed GELU and x·relu6(x + 3)·(1/6) stayed unfused
    (found by the fuzz's coverage of which rules apply). A constant within one float16 ulp
    of the literal now matches; two ulps off, or a float32 constant off by as much, does not."""
    opset, fused, body, consts = F16_FORMS[form]
    text = f"""<ir_version: 8, opset_import: ["" : {opset}]>
        g ({{t}}[2,50] x) => ({{t}}[2,50] y) {{{{
          {body}
        }}}}"""
    for t, dtype, shift, fuses in (
        ("float16", np.float16, 0, True),
        ("float16", np.float16, 2, False),  # two ulps off
        ("float", np.float32, 0, True),
    ):
        values = {k: np.array(v, dtype) for k, v in consts.items()}
        for k in values:
            if shift and values[k] not in (0.0, 1.0, 3.0, 6.0, 0.5):
                up = np.nextafter(values[k], np.array(np.inf, dtype))
                values[k] = np.nextafter(up, np.array(np.inf, dtype))
        model = build(text.format(t=t), values)
        out = graphopt.optimize(model, "default")
        assert (ops(out) == [fused]) == fuses, (t, shift, ops(out))
        _same_outputs(model, out, 2e-2 if dtype == np.float16 else 1e-4)
    # float32 keeps the 1e-5 of the literal: 1/6 off by 2e-4 (float16's rounding) stays
    if form == "hardswish":
        values = {k: np.array(v, np.float32) for k, v in consts.items()}
        values["sixth"] = np.array(np.float16(1 / 6), np.float32)
        model = build(text.format(t="float"), values)
        assert "HardSwish" not in ops(graphopt.optimize(model, "default"))


@pytest.mark.parametrize("opset", [17, 20])
def test_float64_layernorm_keeps_an_epsilon_float32_cannot_hold(opset):
    """(x − E[x])/√(E[(x − E[x])²] + ε)·γ + β over two values close together (fuzz seeds 76436,
    77528): LayerNormalization's epsilon is a float32 attribute, so a float64 ε = 1e-5 became
    1e-5·(1 − 2.5e-9): 1.2e-8 of the scale off here, where the variance is near ε. Such a float64
    model keeps its decomposition; an ε float32 holds exactly (2⁻¹⁷), and float32, still fuse."""
    reduce = (
        """mu = ReduceMean<axes = [-1]>(x)
          v = ReduceMean<axes = [-1]>(q)"""
        if opset < 18
        else """mu = ReduceMean(x, ax)
          v = ReduceMean(q, ax)"""
    )
    mu_line, v_line = reduce.split("\n")
    text = f"""<ir_version: 8, opset_import: ["" : {opset}]>
        g ({{t}}[3,2] x) => ({{t}}[3,2] y) {{{{
          {mu_line.strip()}
          d = Sub(x, mu)
          q = Mul(d, d)
          {v_line.strip()}
          e = Add(v, eps)
          s = Sqrt(e)
          n = Div(d, s)
          m = Mul(n, g)
          y = Add(m, b)
        }}}}"""
    x = np.array([[1.0, 1.003], [0.5, 0.502], [-2.0, -1.996]])
    for t, dtype, eps, fused in (
        ("double", np.float64, 1e-5, False),
        ("double", np.float64, 2.0**-17, True),
        ("float", np.float32, 1e-5, True),
    ):
        consts = {
            "eps": np.array(eps, dtype),
            "g": np.array([0.9, 1.4], dtype),
            "b": np.array([0.1, -0.2], dtype),
        }
        if opset >= 18:
            consts["ax"] = np.array([-1], np.int64)
        model = build(text.format(t=t), consts)
        out = graphopt.optimize(model, "default")
        assert (ops(out) == ["LayerNormalization"]) == fused, (t, eps, ops(out))
        _same_outputs(model, out, 1e-12 if dtype == np.float64 else 1e-4, {"x": x.astype(dtype)})
