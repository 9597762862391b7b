"""Adversarial review of the activation fusions (patterns/activations.yaml, ort_contrib.yaml):
models just outside a rule's preconditions, run in onnxruntime (optimizations off) before and
after `graphopt.optimize` on inputs that cross every kink."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, ops, run_at

X = np.linspace(-8, 8, 48, dtype=np.float32).reshape(1, 3, 4, 4)


def _outputs_agree(model: onnx.ModelProto, out: onnx.ModelProto) -> None:
    """Both models' outputs at ORT_DISABLE_ALL: same dtype and shape, NaN where the other has
    NaN, values within 1e-4."""
    onnx.checker.check_model(out, full_check=True)
    want, got = run_at(model, {"x": X}, "disable"), run_at(out, {"x": X}, "disable")
    for name, a in want.items():
        b = got[name]
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=name)


GELU_TANH = """<ir_version: 8, opset_import: ["" : {opset}]>
g (float[1,3,4,4] x) => (float[1,3,4,4] y) {{
  c3 = Pow(x, three)
  k = Mul(c3, co)
  s = Add(x, k)
  u = Mul(s, sp)
  th = Tanh(u)
  p = Add(th, one)
  m = Mul(x, half)
  y = Mul(m, p)
}}"""


def _gelu_tanh(opset: int, exponent: float) -> onnx.ModelProto:
    values = {"three": exponent, "co": 0.044715, "sp": math.sqrt(2 / math.pi), "one": 1.0}
    values["half"] = 0.5
    inits = {k: np.array(v, np.float32) for k, v in values.items()}
    return build(GELU_TANH.format(opset=opset), inits)


@pytest.mark.parametrize(
    ("opset", "pipeline"), [(20, "default"), (20, "tensorrt"), (13, "ort-fusions")]
)
def test_a_pow_exponent_near_three_is_not_the_cube_of_tanh_gelu(opset, pipeline):
    """x^3.00002 is NaN for every x < 0 (a negative base to a non-integer power), so the
    original's output is NaN there; 3.00002 is within the literal 3's tolerance (1e-7 + 1e-5·3),
    and the chain became Gelu(x; tanh) (opset 20) or com.microsoft.FastGelu, finite
    everywhere. A Pow exponent matches only exactly."""
    model = _gelu_tanh(opset, 3.00002)
    out = graphopt.optimize(model, pipeline)
    assert "Pow" in ops(out)
    _outputs_agree(model, out)


@pytest.mark.parametrize(
    ("opset", "pipeline", "fused"),
    [(20, "default", "Gelu"), (13, "ort-fusions", "com.microsoft.FastGelu")],
)
def test_the_exact_cube_still_fuses(opset, pipeline, fused):
    """The control: x^3 exactly (float32 3.0) still becomes the one op, outputs unchanged."""
    model = _gelu_tanh(opset, 3.0)
    out = graphopt.optimize(model, pipeline)
    assert ops(out) == [fused]
    _outputs_agree(model, out)


LAYERNORM = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,3,4,4] x) => (float[1,3,4,4] y) {
  mu = ReduceMean<axes=[-1]>(x)
  d = Sub(x, mu)
  q = Pow(d, two)
  v = ReduceMean<axes=[-1]>(q)
  e = Add(v, eps)
  s = Sqrt(e)
  n = Div(d, s)
  g = Mul(n, gamma)
  y = Add(g, beta)
}"""


def _layernorm(exponent: np.ndarray) -> onnx.ModelProto:
    inits = {
        "two": exponent,
        "eps": np.array(1e-5, np.float32),
        "gamma": np.linspace(0.5, 1.5, 4, dtype=np.float32),
        "beta": np.linspace(-1, 1, 4, dtype=np.float32),
    }
    return build(LAYERNORM, inits)


@pytest.mark.parametrize(
    "exponent", [np.array(2.00001, np.float32), np.array(2 + 1e-9, np.float64)], ids=str
)
def test_a_pow_exponent_near_two_is_not_the_square_of_layernorm(exponent):
    """(x − E[x])^2.00001 is NaN wherever x is below its row's mean; the variance, and so the
    whole row, is NaN in the original. 2.00001 matched the literal 2 (within 1e-7 + 1e-5·2),
    and so did a float64 exponent (Pow's may have another type than its base) 1e-9 off, within
    the absolute 1e-7 alone; LayerNormalization gave finite rows."""
    model = _layernorm(exponent)
    out = graphopt.optimize(model)
    assert "LayerNormalization" not in ops(out)
    _outputs_agree(model, out)


def test_the_exact_square_still_fuses_into_layernorm():
    """The control: (x − E[x])^2 exactly becomes LayerNormalization, outputs unchanged."""
    model = _layernorm(np.array(2.0, np.float32))
    out = graphopt.optimize(model)
    assert ops(out) == ["LayerNormalization"]
    _outputs_agree(model, out)


W1 = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3, 1, 1)
CONTRIB_SITES = {
    "fusedconv-relu": (
        "c = Conv(x, W)\n  y = Relu(c)",
        {"W": W1},
        "float[1,4,4,4] y",
    ),
    "quickgelu": ("s = Sigmoid(x)\n  y = Mul(x, s)", {}, "float[1,3,4,4] y"),
    "gelu-contrib": (
        "d = Div(x, r2)\n  e = Erf(d)\n  p = Add(e, one)\n  m = Mul(x, half)\n  y = Mul(m, p)",
        {"r2": np.float32(math.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)},
        "float[1,3,4,4] y",
    ),
}


def _contrib_site(rule: str, contrib_version: int) -> onnx.ModelProto:
    body, inits, output = CONTRIB_SITES[rule]
    text = f"""<ir_version: 8, opset_import: ["" : 13, "com.microsoft" : {contrib_version}]>
    g (float[1,3,4,4] x) => ({output}) {{
      {body}
    }}"""
    return build(text, inits)


@pytest.mark.parametrize("rule", sorted(CONTRIB_SITES))
def test_no_contrib_op_where_the_model_imports_com_microsoft_at_another_version(rule):
    """A model that imports com.microsoft at version 0 (onnx's checker and onnxruntime load
    it: nothing uses the domain) got com.microsoft FusedConv / QuickGelu / Gelu under that
    import, and onnxruntime refused the result ("com.microsoft:FusedConv(-1) is not a
    registered function/op"): it registers its contrib ops at version 1. The ort-contrib
    rules now refuse such a model and leave the site as it was."""
    model = _contrib_site(rule, 0)
    out = graphopt.optimize(model, "ort-fusions")
    assert not any(n.domain == "com.microsoft" for n in out.graph.node), ops(out)
    _outputs_agree(model, out)


@pytest.mark.parametrize("rule", sorted(CONTRIB_SITES))
def test_contrib_ops_still_fuse_under_com_microsoft_version_one(rule):
    """The control: the same sites with com.microsoft imported at 1 fuse, outputs unchanged."""
    model = _contrib_site(rule, 1)
    out = graphopt.optimize(model, "ort-fusions")
    assert [n.domain for n in out.graph.node] == ["com.microsoft"], ops(out)
    _outputs_agree(model, out)
