"""The literals an activation's decomposition cancels to 0 before x multiplies it match only
exactly (H226): relu6's floor 0 (HardSwish, and HardSigmoid, which x·HardSigmoid(x) makes
HardSwish next), 1 + erf / 1 + tanh (Gelu, com.microsoft Gelu / FastGelu) and eˣ + 1 (Mish,
Softplus, which x·tanh(Softplus(x)) makes Mish next). Within the 1e-7 + 1e-5·|v| tolerance a
floor of -1e-8 or a + 1.000003 matched, and the original's +inf (x = -inf) or 1.7e21
(x = -1e30) became NaN or 0. The other literals (3, 6, ½, √2, …) keep the tolerance."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.errors import PipelineError
from graphopt.passes.fuse_patterns import FusePatterns
from graphopt.patterns.rules import parse_rules
from tests.fusion_models import build, ops, run_at, run_passes

X = np.array([-np.inf, -1e30, -10, -3.5, -1, 0, 1, 4, 1e30, np.inf], np.float32)
HEAD = '<ir_version: 8, opset_import: ["" : {opset}]>\ng (float[10] x) => (float[10] y) {{\n'


def _model(body: str, opset: int, **consts: float) -> onnx.ModelProto:
    inits = {k: np.array(v, np.float32) for k, v in consts.items()}
    return build(HEAD.format(opset=opset) + body + "\n}", inits)


def _same_or_refused(model: onnx.ModelProto, pipeline: str, kept: str) -> None:
    """`pipeline` leaves `kept` in the model, and its outputs are the original's, at ±inf too."""
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    assert kept in ops(out), ops(out)
    want = run_at(model, {"x": X}, "disable")["y"]
    got = run_at(out, {"x": X}, "disable")["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


HARDSWISH = "a = Add(x, three)\nc = Clip(a, lo, six)\nm = Mul(x, c)\ny = Div(m, six)"
HARDSWISH_MAX = "a = Add(x, three)\nr = Max(a, lo)\nc = Min(r, six)\nm = Mul(x, c)\ny = Div(m, six)"
HARDSWISH_ATTR = "a = Add(x, three)\nc = Clip<min={lo}, max=6.0>(a)\nm = Mul(x, c)\ny = Div(m, six)"
HSIGMOID = "a = Add(x, three)\nc = Clip(a, lo, six)\nh = Div(c, six)\ny = Mul(x, h)"
AFFINE = "s = Mul(x, al)\nb = Add(s, be)\nh = Clip(b, lo, one)\ny = Mul(x, h)"


@pytest.mark.parametrize("lo", [-1e-8, 1e-8, 5e-8])
@pytest.mark.parametrize(
    ("body", "opset", "pipeline"),
    [
        pytest.param(HARDSWISH, 14, "default", id="hardswish"),
        pytest.param(HARDSWISH, 13, "default", id="x-hardsigmoid"),  # opset 6-13
        pytest.param(HARDSWISH, 14, "tensorrt", id="hardswish-tensorrt"),
        pytest.param(HARDSWISH_MAX, 14, "default", id="hardswish-max-min"),
        pytest.param(HSIGMOID, 14, "default", id="hardsigmoid"),  # then x·HardSigmoid(x)
        pytest.param(AFFINE, 14, "default", id="hardsigmoid-affine"),  # then HardSwish
    ],
)
def test_a_relu6_floor_near_zero_is_not_zero(body, opset, pipeline, lo):
    model = _model(body, opset, three=3.0, six=6.0, lo=lo, al=1 / 6, be=0.5, one=1.0)
    kept = "Max" if "Max" in body else "Clip"
    _same_or_refused(model, pipeline, kept)


@pytest.mark.parametrize("lo", [-1e-8, 1e-8])
def test_a_clip_min_attribute_near_zero_is_not_zero(lo):
    """Opset 6-10 Clip, its bounds attributes: `min=approx(0, 0)` in the rule."""
    model = _model(HARDSWISH_ATTR.format(lo=lo), 10, three=3.0, six=6.0)
    _same_or_refused(model, "default", "Clip")


def test_a_clip_floor_of_exactly_zero_still_fuses():
    """The controls: the exported forms (the floor 0, or -0) become HardSwish / HardSigmoid."""
    for lo in (0.0, -0.0):
        out = graphopt.optimize(_model(HARDSWISH, 14, three=3.0, six=6.0, lo=lo), "default")
        assert ops(out) == ["HardSwish"]
        out = graphopt.optimize(_model(HARDSWISH, 13, three=3.0, six=6.0, lo=lo), "default")
        assert ops(out) == ["HardSigmoid", "Mul"]
    out = graphopt.optimize(_model(HARDSWISH_ATTR.format(lo=0.0), 10, three=3.0, six=6.0))
    assert ops(out) == ["HardSigmoid", "Mul"]
    # a tolerated 3 and 6 (bounded: the kink moves by 3e-5) still fuse
    out = graphopt.optimize(_model(HARDSWISH, 14, three=3.00002, six=6.00004, lo=0.0))
    assert ops(out) == ["HardSwish"]


GELU = "d = Div(x, r2)\ne = Erf(d)\na = Add(e, one)\nm = Mul(x, half)\ny = Mul(m, a)"
GELU_TANH = (
    "c = Mul(x, x)\nc3 = Mul(c, x)\nk = Mul(c3, co)\ns = Add(x, k)\nu = Mul(s, sp)\n"
    "t = Tanh(u)\na = Add(t, one)\nm = Mul(x, half)\ny = Mul(m, a)"
)
MISH = "e = Exp(x)\na = Add(e, one)\nl = Log(a)\nt = Tanh(l)\ny = Mul(x, t)"


@pytest.mark.parametrize("one", [1.000003, 0.999997])
@pytest.mark.parametrize(
    ("body", "opset", "pipeline", "kept"),
    [
        pytest.param(GELU, 20, "default", "Erf", id="gelu"),
        pytest.param(GELU, 13, "ort-fusions", "Erf", id="contrib-gelu"),
        pytest.param(GELU_TANH, 20, "default", "Tanh", id="gelu-tanh"),
        pytest.param(GELU_TANH, 13, "ort-fusions", "Tanh", id="fastgelu"),
        pytest.param(MISH, 18, "default", "Exp", id="mish"),
        pytest.param(MISH, 17, "default", "Exp", id="softplus"),  # opset 17: no Mish
    ],
)
def test_a_one_that_cancels_is_exactly_one(body, opset, pipeline, kept, one):
    consts = {"r2": math.sqrt(2), "half": 0.5, "co": 0.044715, "sp": math.sqrt(2 / math.pi)}
    _same_or_refused(_model(body, opset, one=one, **consts), pipeline, kept)


def test_an_exact_one_still_fuses():
    consts = {"r2": math.sqrt(2), "half": 0.5, "co": 0.044715, "sp": math.sqrt(2 / math.pi)}
    assert ops(graphopt.optimize(_model(GELU, 20, one=1.0, **consts))) == ["Gelu"]
    assert ops(graphopt.optimize(_model(GELU_TANH, 20, one=1.0, **consts))) == ["Gelu"]
    assert ops(graphopt.optimize(_model(MISH, 18, one=1.0))) == ["Mish"]
    out = graphopt.optimize(_model(MISH, 17, one=1.0))
    assert ops(out) == ["Softplus", "Tanh", "Mul"]


USER_RULE = """
rules:
  - name: leaky-to-relu
    group: mine
    doc: LeakyRelu(x; α = 0)  ⇒  Relu(x)
    target: y = LeakyRelu(x, alpha={alpha})
    replacement: y = Relu(x)
"""


@pytest.mark.parametrize(
    ("alpha", "attr", "fused"),
    [
        ("approx(0, 0)", 0.0, True),
        ("approx(0, 0)", 1e-8, False),  # inf·1e-8 is inf, Relu's 0 is not
        ("approx(0.1, 0)", 0.1, True),  # 0.1 as float32 holds it
        ("approx(0.1, 0)", 0.100001, False),
        ("approx(0.1, 1e-4)", 0.100001, True),
        ("0", 1e-8, True),  # a plain number: the tolerance 1e-7 + 1e-5·|v|, as before
    ],
)
def test_a_target_attribute_takes_approx(tmp_path, alpha, attr, fused):
    path = tmp_path / "mine.yaml"
    path.write_text(USER_RULE.format(alpha=alpha))
    model = build(
        '<ir_version: 8, opset_import: ["" : 14]>\n'
        f"g (float[10] x) => (float[10] y) {{ y = LeakyRelu<alpha={attr!r}>(x) }}"
    )
    out, _ = run_passes(model, [FusePatterns(groups=["mine"])], rule_files=str(path))
    assert ops(out) == (["Relu"] if fused else ["LeakyRelu"])


def test_approx_in_a_replacement_attribute_is_refused():
    text = USER_RULE.format(alpha="a").replace("Relu(x)", "LeakyRelu(x, alpha=approx(0, 0))")
    with pytest.raises(PipelineError, match="attribute alpha= must be a literal or a name"):
        parse_rules(text, "mine.yaml")
