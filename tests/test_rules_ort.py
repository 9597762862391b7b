"""onnxruntime-only rules (patterns/ort_contrib.yaml): Conv + activation → com.microsoft
FusedConv, x·σ(x) → QuickGelu. Rewritten models must run at ORT_DISABLE_ALL (no onnxruntime
optimizer to create or understand them) and match the original."""

from __future__ import annotations

import numpy as np
import pytest

import graphopt
from graphopt.patterns.checks import ort_supports
from tests.fusion_models import build, explained, feeds, ops, rand, run_at, run_passes

CONV = """<ir_version: 8, opset_import: ["" : {opset}]>
g (float[1,3,6,6] x) => (float[1,4,6,6] y) {{
  c = Conv<pads = [1, 1, 1, 1], strides = [1, 1]>(x, W{bias})
  {act}
}}"""

ACTIVATIONS = {
    "Relu": "y = Relu(c)",
    "Sigmoid": "y = Sigmoid(c)",
    "Tanh": "y = Tanh(c)",
    "LeakyRelu": "y = LeakyRelu<alpha = 0.3>(c)",
    "Clip": "lo = Constant<value = float {-0.5}>()\n  hi = Constant<value = float {1.5}>()\n  y = Clip(c, lo, hi)",
    "ClipMaxOnly": "hi = Constant<value = float {1.5}>()\n  y = Clip(c, , hi)",
    "HardSigmoid": "y = HardSigmoid<alpha = 0.25, beta = 0.4>(c)",
}


def same_at_disable_all(original, rewritten, inputs):
    ref = run_at(original, inputs, "all")
    got = run_at(rewritten, inputs, "disable")
    for name, value in ref.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("bias", [True, False])
def test_fusedconv_activations(act, bias):
    model = build(
        CONV.format(opset=13, bias=", B" if bias else "", act=ACTIVATIONS[act]),
        {"W": rand(4, 3, 3, 3), "B": rand(4)},
    )
    out, _report = run_passes(model, ["fuse-ort-contrib"])
    assert ops(out) == ["com.microsoft.FusedConv"]
    node = out.graph.node[-1]
    attrs = {a.name for a in node.attribute}
    assert {"activation", "pads", "strides"} <= attrs
    assert {o.domain: o.version for o in out.opset_import}["com.microsoft"] == 1
    same_at_disable_all(model, out, feeds(model))


def test_fusedconv_clip_attributes_at_opset_10():
    model = build(
        CONV.format(opset=10, bias=", B", act="y = Clip<min = 0.0, max = 6.0>(c)"),
        {"W": rand(4, 3, 3, 3), "B": rand(4)},
    )
    out, _ = run_passes(model, ["fuse-ort-contrib"])
    assert ops(out) == ["com.microsoft.FusedConv"]
    same_at_disable_all(model, out, feeds(model))


HARDSWISH = {
    "op": ("y = HardSwish(c)", 14),
    "div": ("t = Constant<value = float {3.0}>()\n  a = Add(c, t)\n  z = Constant<value = float {0.0}>()\n  s = Constant<value = float {6.0}>()\n  r = Clip(a, z, s)\n  m = Mul(c, r)\n  y = Div(m, s)", 13),
    "hardsigmoid": ("h = HardSigmoid<alpha = 0.16666667, beta = 0.5>(c)\n  y = Mul(c, h)", 13),
}  # fmt: skip


@pytest.mark.skipif(
    ort_supports(None, "FusedConv:HardSwish") is not None,  # type: ignore[arg-type]
    reason="this onnxruntime's FusedConv has no HardSwish activation",
)
@pytest.mark.parametrize("form", sorted(HARDSWISH))
def test_fusedconv_hardswish_from_any_form(form):
    body, opset = HARDSWISH[form]
    model = build(
        CONV.format(opset=opset, bias=", B", act=body), {"W": rand(4, 3, 3, 3), "B": rand(4)}
    )
    out, _ = run_passes(model, ["fuse-ort-contrib"])
    assert ops(out) == ["com.microsoft.FusedConv"]
    same_at_disable_all(model, out, feeds(model))


def test_quickgelu_for_silu_at_any_opset():
    model = build(
        """<ir_version: 6, opset_import: ["" : 11]>
        g (float[2,8] x) => (float[2,8] y) {
          s = Sigmoid(x)
          y = Mul(x, s)
        }"""
    )
    out, _ = run_passes(model, ["fuse-ort-contrib"])
    assert ops(out) == ["com.microsoft.QuickGelu"]
    same_at_disable_all(model, out, feeds(model))


def test_conv_silu_becomes_conv_quickgelu():
    model = build(
        CONV.format(opset=11, bias=", B", act="s = Sigmoid(c)\n  y = Mul(c, s)"),
        {"W": rand(4, 3, 3, 3), "B": rand(4)},
    )
    out, _ = run_passes(model, ["fuse-ort-contrib"])
    # Not FusedConv(Sigmoid): the Mul still reads the Conv output.
    assert ops(out) == ["Conv", "com.microsoft.QuickGelu"]
    same_at_disable_all(model, out, feeds(model))


def test_fusedconv_refuses_float16():
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float16[1,3,6,6] x) => (float16[1,4,6,6] y) {
          c = Conv<pads = [1, 1, 1, 1]>(x, W)
          y = Relu(c)
        }""",
        {"W": rand(4, 3, 3, 3, dtype=np.float16)},
    )
    out, report = run_passes(model, ["fuse-ort-contrib"])
    assert ops(out) == ["Conv", "Relu"]
    assert explained(report, "fusedconv-relu", "refused") == [
        "dtype: W is float16, the rule needs float32"
    ]


@pytest.mark.parametrize("pipeline", ["default", "tensorrt"])
def test_portable_pipelines_emit_no_contrib_ops(pipeline):
    model = build(
        CONV.format(opset=13, bias=", B", act="s = Sigmoid(c)\n  y = Mul(c, s)"),
        {"W": rand(4, 3, 3, 3), "B": rand(4)},
    )
    out = graphopt.optimize(model, pipeline)
    assert all(n.domain in ("", "ai.onnx") for n in out.graph.node)
    assert "com.microsoft" not in {o.domain for o in out.opset_import}
    out = graphopt.optimize(model, "ort-fusions")
    assert "com.microsoft.QuickGelu" in ops(out)
