"""Regression tests for review findings in several modules (one section per finding): each test
fails on the code before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops, rand, run_at, run_passes

# ---------------------------------------------------------------------------- 1. layernorm_params

LAYERNORM = """<ir_version: 8, opset_import: ["" : 17]>
g (float[{x}] x) => (float[{y}] y) {{
  mu = ReduceMean<axes = {axes}>(x)
  d = Sub(x, mu)
  two = Constant<value = float {{2.0}}>()
  sq = Pow(d, two)
  var = ReduceMean<axes = {axes}>(sq)
  eps = Constant<value = float {{1e-5}}>()
  ve = Add(var, eps)
  sd = Sqrt(ve)
  n = Div(d, sd)
  sc = Mul(n, gamma)
  y = Add(sc, beta)
}}"""


def _layernorm(x: str, y: str, axes: str, gamma: np.ndarray, beta: np.ndarray):
    return build(LAYERNORM.format(x=x, y=y, axes=axes), {"gamma": gamma, "beta": beta})


def test_layernorm_refuses_scale_that_broadcasts_the_normalized_dims():
    # x's normalized axis has size 1, γ and β size 8: the original output is [2,5,8], a
    # LayerNormalization's would be x's [2,5,1].
    m = _layernorm("2,5,1", "2,5,8", "[-1]", rand(8), rand(8))
    out, _ = run_passes(m, ["fuse-activations"])
    assert "LayerNormalization" not in ops(out)
    # (onnxruntime's own LayerNormFusion fails on this model: compare unoptimized runs.)
    x = feeds(m)
    expected, got = run_at(m, x, "disable")["y"], run_at(out, x, "disable")["y"]
    assert got.shape == expected.shape == (2, 5, 8)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_layernorm_refuses_unknown_normalized_dims():
    # H is symbolic: γ of 8 elements is only safe when H == 8, which the shapes do not prove.
    m = _layernorm("2,5,H", "2,5,8", "[-1]", rand(8), rand(8))
    out, _ = run_passes(m, ["fuse-activations"])
    assert "LayerNormalization" not in ops(out)


def test_layernorm_expands_scale_that_broadcasts_within_x():
    # γ, β of shape [1,8] over x's [5,8]: the output keeps x's shape; Scale/B become [5,8].
    m = _layernorm("2,5,8", "2,5,8", "[-2, -1]", rand(1, 8), rand(1, 8))
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["LayerNormalization"]
    scale = {i.name: i for i in out.graph.initializer}[out.graph.node[-1].input[1]]
    assert list(scale.dims) == [5, 8]
    assert_same_outputs(m, out, feeds(m))


def test_layernorm_still_fuses_exact_scale():
    m = _layernorm("2,5,8", "2,5,8", "[-1]", rand(8), rand(8))
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["LayerNormalization"]
    assert_same_outputs(m, out, feeds(m))
