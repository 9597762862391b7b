"""Decomposed activations → one op (patterns/activations.yaml), compared with onnxruntime, with
the opset each target op needs (refused below it, rewritten after an opset upgrade on request)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import assert_same_outputs, needs_onnxruntime_opset_24
from tests.fusion_models import build, explained, feeds, ops, rand, run_passes

HEAD = '<ir_version: {ir}, opset_import: ["" : {opset}]>\ng (float[2,3,4,5] x) => (float[2,3,4,5] y) {{\n'
CONSTS = """
  three = Constant<value = float {3.0}>()
  zero = Constant<value = float {0.0}>()
  six = Constant<value = float {6.0}>()
  sixth = Constant<value = float {0.16666667}>()
  one = Constant<value = float {1.0}>()
  half = Constant<value = float {0.5}>()
  two = Constant<value = float {2.0}>()
"""


def model(body: str, opset: int = 14):
    ir = 10 if opset >= 21 else 8
    return build(HEAD.format(ir=ir, opset=opset) + CONSTS + body + "\n}")


RELU6 = {
    "clip": "c = Clip(a, zero, six)",
    "min-relu": "r = Relu(a)\n  c = Min(r, six)",
    "min-max": "r = Max(a, zero)\n  c = Min(r, six)",
    "max-min": "r = Min(six, a)\n  c = Max(r, zero)",
}
HARDSWISH_TAIL = {
    "div": "m = Mul(x, c)\n  y = Div(m, six)",
    "mul-sixth": "m = Mul(c, x)\n  y = Mul(m, sixth)",
    "inner-div": "h = Div(c, six)\n  y = Mul(x, h)",
    "inner-mul": "h = Mul(sixth, c)\n  y = Mul(h, x)",
}


@pytest.mark.parametrize("relu6", sorted(RELU6))
@pytest.mark.parametrize("tail", sorted(HARDSWISH_TAIL))
def test_hardswish_forms(relu6, tail):
    body = "a = Add(x, three)\n  " + RELU6[relu6] + "\n  " + HARDSWISH_TAIL[tail]
    m14 = model(body, 14)
    out, report = run_passes(m14, ["fuse-activations"])
    assert ops(out) == ["HardSwish"]
    assert_same_outputs(m14, out, feeds(m14))
    # Opset 13 has no HardSwish: x·HardSigmoid(x) instead (4+ ops → 2).
    m13 = model(body, 13)
    out, report = run_passes(m13, ["fuse-activations"])
    assert sorted(ops(out)) == ["HardSigmoid", "Mul"]
    assert "HardSwish needs opset 14, the model has 13" in explained(report, "hardswish", "refused")
    assert_same_outputs(m13, out, feeds(m13))


def test_hardswish_upgrades_opset_when_asked():
    body = "a = Add(x, three)\n  c = Clip(a, zero, six)\n  m = Mul(x, c)\n  y = Div(m, six)"
    m13 = model(body, 13)
    out, report = run_passes(m13, ["fuse-activations"], upgrade_opset=True)
    assert ops(out) == ["HardSwish"]
    assert {o.domain: o.version for o in out.opset_import}[""] == 14
    assert report.totals()["fuse-activations"]["opset_upgraded_to"] == 14
    assert_same_outputs(m13, out, feeds(m13))


def test_upgrade_refused_when_the_converted_model_fails_the_checker(monkeypatch):
    import onnx
    from onnx import version_converter

    def broken(proto, version):
        out = onnx.ModelProto()
        out.CopyFrom(proto)
        for entry in out.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = version
        out.graph.node[-1].input[0] = "undefined_tensor"  # what a buggy adapter could emit
        return out

    monkeypatch.setattr(version_converter, "convert_version", broken)
    body = "a = Add(x, three)\n  c = Clip(a, zero, six)\n  m = Mul(x, c)\n  y = Div(m, six)"
    m13 = model(body, 13)
    out, report = run_passes(m13, ["fuse-activations"], upgrade_opset=True)
    assert {o.domain: o.version for o in out.opset_import}[""] == 13
    assert sorted(ops(out)) == ["HardSigmoid", "Mul"]
    assert "opset_upgraded_to" not in report.totals()["fuse-activations"]
    assert_same_outputs(m13, out, feeds(m13))


def test_hardswish_clip_with_attributes_at_opset_10():
    body = (
        "a = Add(x, three)\n  c = Clip<min = 0.0, max = 6.0>(a)\n  m = Mul(x, c)\n  y = Div(m, six)"
    )
    m10 = model(body, 10)
    out, _ = run_passes(m10, ["fuse-activations"])
    assert sorted(ops(out)) == ["HardSigmoid", "Mul"]
    assert_same_outputs(m10, out, feeds(m10))


def test_hardswish_with_wrong_constant_or_shared_intermediate_is_kept():
    wrong = model(
        "a = Add(x, three)\n  c = Clip(a, zero, three)\n  m = Mul(x, c)\n  y = Div(m, six)"
    )
    out, _ = run_passes(wrong, ["fuse-activations"])
    assert "HardSwish" not in ops(out)
    shared = build(
        HEAD.format(ir=8, opset=14).replace(
            "(float[2,3,4,5] y)", "(float[2,3,4,5] y, float[2,3,4,5] c)"
        )
        + CONSTS
        + "a = Add(x, three)\n  c = Clip(a, zero, six)\n  m = Mul(x, c)\n  y = Div(m, six)\n}"
    )
    out, report = run_passes(shared, ["fuse-activations"])
    assert "HardSwish" not in ops(out)
    assert any(
        "also used by the graph outputs" in r for r in explained(report, "hardswish", "refused")
    )


@pytest.mark.parametrize(
    "body",
    [
        "a = Add(x, three)\n  c = Clip(a, zero, six)\n  y = Div(c, six)",
        "a = Add(three, x)\n  r = Relu(a)\n  c = Min(r, six)\n  y = Mul(c, sixth)",
        "p = Mul(x, alpha)\n  q = Add(p, half)\n  y = Clip(q, zero, one)",
    ],
)
def test_hardsigmoid(body):
    m = model("alpha = Constant<value = float {0.2}>()\n  " + body, 13)
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["HardSigmoid"]
    assert_same_outputs(m, out, feeds(m))


@needs_onnxruntime_opset_24
def test_silu_needs_opset_24_or_an_upgrade():
    body = "s = Sigmoid(x)\n  y = Mul(s, x)"
    m24 = model(body, 24)
    out, _ = run_passes(m24, ["fuse-activations"])
    assert ops(out) == ["Swish"]
    assert_same_outputs(m24, out, feeds(m24))
    m11 = model(body, 11)
    out, report = run_passes(m11, ["fuse-activations"])
    assert ops(out) == ["Sigmoid", "Mul"]
    assert explained(report, "silu", "refused") == ["Swish needs opset 24, the model has 11"]
    out, _ = run_passes(m11, ["fuse-activations"], upgrade_opset=True)
    assert ops(out) == ["Swish"]
    assert_same_outputs(m11, out, feeds(m11))


GELU_ERF = {
    "half-first": "d = Div(x, sqrt2)\n  e = Erf(d)\n  f = Add(e, one)\n  h = Mul(x, half)\n  y = Mul(h, f)",
    "half-last": "d = Mul(x, rsqrt2)\n  e = Erf(d)\n  f = Add(one, e)\n  h = Mul(x, f)\n  y = Mul(h, half)",
    "div-two": "d = Div(x, sqrt2)\n  e = Erf(d)\n  f = Add(e, one)\n  h = Mul(f, x)\n  y = Div(h, two)",
    "half-inner": "d = Div(x, sqrt2)\n  e = Erf(d)\n  f = Add(e, one)\n  h = Mul(half, f)\n  y = Mul(x, h)",
}
GELU_CONSTS = (
    "sqrt2 = Constant<value = float {1.4142135}>()\n  rsqrt2 = Constant<value = float {0.70710677}>()\n  "
    "k = Constant<value = float {0.044715}>()\n  c = Constant<value = float {0.7978846}>()\n  "
    "p3 = Constant<value = float {3.0}>()\n  "
)


@pytest.mark.parametrize("form", sorted(GELU_ERF))
def test_gelu_erf(form):
    m = model(GELU_CONSTS + GELU_ERF[form], 20)
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["Gelu"]
    assert_same_outputs(m, out, feeds(m))
    old = model(GELU_CONSTS + GELU_ERF[form], 17)
    out, _ = run_passes(old, ["fuse-activations"])
    assert "Gelu" not in ops(out) and "Erf" in ops(out)


@pytest.mark.parametrize("cube", ["q = Pow(x, p3)", "x2 = Mul(x, x)\n  q = Mul(x2, x)"])
def test_gelu_tanh(cube):
    body = (
        cube
        + "\n  r = Mul(q, k)\n  s = Add(x, r)\n  t = Mul(s, c)\n  u = Tanh(t)\n  v = Add(u, one)\n  h = Mul(x, half)\n  y = Mul(h, v)"
    )
    m = model(GELU_CONSTS + body, 20)
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["Gelu"]
    assert out.graph.node[-1].attribute[0].s == b"tanh"
    assert_same_outputs(m, out, feeds(m))


@pytest.mark.parametrize(
    "softplus", ["sp = Softplus(x)", "e = Exp(x)\n  f = Add(e, one)\n  sp = Log(f)"]
)
def test_mish(softplus):
    m = model(softplus + "\n  t = Tanh(sp)\n  y = Mul(x, t)", 18)
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["Mish"]
    assert_same_outputs(m, out, feeds(m))


def test_softplus_and_mish_below_opset_18():
    m = model("e = Exp(x)\n  f = Add(e, one)\n  sp = Log(f)\n  t = Tanh(sp)\n  y = Mul(x, t)", 13)
    out, _report = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["Softplus", "Tanh", "Mul"]
    assert_same_outputs(m, out, feeds(m))


def test_layernorm_axes_attribute_opset_17():
    m = build(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2,5,8] x) => (float[2,5,8] y) {
          mu = ReduceMean<axes = [-1]>(x)
          d = Sub(x, mu)
          two = Constant<value = float {2.0}>()
          sq = Pow(d, two)
          var = ReduceMean<axes = [-1]>(sq)
          eps = Constant<value = float {1e-5}>()
          ve = Add(var, eps)
          sd = Sqrt(ve)
          n = Div(d, sd)
          sc = Mul(n, gamma)
          y = Add(sc, beta)
        }""",
        {"gamma": rand(8), "beta": rand(8)},
    )
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["LayerNormalization"]
    assert_same_outputs(m, out, feeds(m))


def test_layernorm_axes_input_opset_18_and_refusals():
    text = """<ir_version: 8, opset_import: ["" : 18]>
        g (float[2,5,8] x) => (float[2,5,8] y) {{
          ax = Constant<value = int64[1] {{{a1}}}>()
          ax2 = Constant<value = int64[1] {{{a2}}}>()
          mu = ReduceMean(x, ax)
          d = Sub(x, mu)
          sq = Mul(d, d)
          var = ReduceMean(sq, ax2)
          eps = Constant<value = float {{1e-5}}>()
          ve = Add(var, eps)
          sd = Sqrt(ve)
          n = Div(d, sd)
          sc = Mul(gamma, n)
          y = Add(beta, sc)
        }}"""
    params = {"gamma": rand(8), "beta": rand(8)}
    m = build(text.format(a1=2, a2=-1), params)  # rank is declared: axis 2 is the last
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["LayerNormalization"]
    assert_same_outputs(m, out, feeds(m))
    # Normalizing over axis 1 is not a LayerNormalization over trailing axes.
    wrong = build(text.format(a1=1, a2=1), {"gamma": rand(5, 1), "beta": rand(5, 1)})
    out, report = run_passes(wrong, ["fuse-activations"])
    assert "LayerNormalization" not in ops(out)
    assert "not trailing" in explained(report, "layernorm-axes-input", "refused")[0]
    # Opset 16 lacks LayerNormalization.
    # (ReduceMean with axes attribute at opset 16.)
    old = build(
        text.replace("18]", "16]")
        .format(a1=-1, a2=-1)
        .replace("ReduceMean(x, ax)", "ReduceMean<axes = [-1]>(x)")
        .replace("ReduceMean(sq, ax2)", "ReduceMean<axes = [-1]>(sq)"),
        params,
    )
    out, report = run_passes(old, ["fuse-activations"])
    assert "LayerNormalization" not in ops(out)


def test_softplus():
    m = model("e = Exp(x)\n  f = Add(one, e)\n  y = Log(f)", 13)
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["Softplus"]
    assert_same_outputs(m, out, feeds(m))


def test_hardsigmoid_affine_refuses_a_rank_raising_constant():
    m = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[4,5] x) => (float[1,1,4,5] y) {
          alpha = Constant<value = float[1,1,1,1] {0.2}>()
          half = Constant<value = float {0.5}>()
          zero = Constant<value = float {0.0}>()
          one = Constant<value = float {1.0}>()
          p = Mul(x, alpha)
          q = Add(p, half)
          y = Clip(q, zero, one)
        }"""
    )
    out, report = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["Mul", "Add", "Clip"]
    assert "broadcasts the result" in explained(report, "hardsigmoid-affine", "refused")[0]


@pytest.mark.parametrize(
    ("nodes", "opset", "fused"),
    [
        ([("Add", "x c3", "a"), ("Clip", "a c0 c6", "c"), ("Mul", "x c", "m"), ("Div", "m c6", "y")],
         14, "HardSwish"),
        ([("Add", "x c3", "a"), ("Clip", "a c0 c6", "c"), ("Mul", "x c", "m"), ("Div", "m c6", "y")],
         13, "HardSigmoid"),
        ([("Exp", "x", "e"), ("Add", "e c1", "a"), ("Log", "a", "y")], 13, "Softplus"),
        # the softplus rule is refused on float64, which leaves mish's log(eˣ + 1) form
        ([("Exp", "x", "e"), ("Add", "e c1", "a"), ("Log", "a", "s"), ("Tanh", "s", "t"),
          ("Mul", "x t", "y")], 20, "Mish"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_activations_stay_decomposed_where_onnxruntime_lacks_the_fused_kernel(
    nodes, opset, fused, dtype
):
    """onnxruntime has no double HardSwish, HardSigmoid, Gelu or Softplus: a float64 model fused
    into them would not load (a helper's find); float16 has them."""
    import onnx
    from onnx import helper, numpy_helper

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    constants = [
        numpy_helper.from_array(np.array(v, dtype), name)
        for name, v in (("c0", 0.0), ("c1", 1.0), ("c3", 3.0), ("c6", 6.0))
    ]
    graph = helper.make_graph(
        [helper.make_node(op, ins.split(), [out]) for op, ins, out in nodes],
        "g",
        [helper.make_tensor_value_info("x", elem, [1, 6])],
        [helper.make_tensor_value_info("y", elem, [1, 6])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    out, report = run_passes(model, ["fuse-activations"])
    if dtype is np.float64:
        assert fused not in ops(out)
        reasons = [r for _, _, outcome, r in report.explain if outcome == "refused"]
        assert any(f"onnxruntime has no float64 {fused}" in r for r in reasons), reasons
    else:
        assert fused in ops(out)
    x = np.linspace(-5, 5, 6).reshape(1, 6).astype(dtype)
    assert_same_outputs(model, out, {"x": x})
