"""The rule engine's rank of a PRelu output is the largest of its inputs' ranks (H226), as noop's
LazyShapes, shape_simplify and runtime_shapes take it. The spec broadcasts PRelu's slope one way
(the output has x's shape), but onnx's checker passes a slope of higher rank and onnxruntime
broadcasts both ways: PRelu(x[2, 3], slope [1, 1, 1]) is [1, 2, 3]. The engine listed PRelu
among the ops of their first input's rank, so `rank(a, 2)` held for that output and
fuse-matmul-add-into-gemm made a Gemm of a rank-3 input, which onnxruntime refuses ("left.
NumDimensions() == 2 || left.NumDimensions() == 1 was false") where the original ran."""

from __future__ import annotations

import numpy as np
import pytest

import graphopt
from tests.fusion_models import build, ops, run_at

TEXT = """<ir_version: 8, opset_import: ["" : 14]>
g (float[2,3] x) => (float[2,4] z) {{
  a = PRelu(x, s)
  y = MatMul(a, w)
  z = Add(y, c)
}}"""
X = {"x": (np.arange(6, dtype=np.float32).reshape(2, 3) - 3) / 2}


def _model(slope_shape: tuple[int, ...]):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    inits = {
        "s": rng.uniform(0.05, 0.3, slope_shape).astype(np.float32),
        "w": rng.uniform(-1, 1, (3, 4)).astype(np.float32),
        "c": rng.uniform(-1, 1, 4).astype(np.float32),
    }
    return build(TEXT.format(), inits)


@pytest.mark.parametrize(("slope", "out"), [((1, 1, 1), "1,2,4"), ((2, 1, 1), "2,2,4")])
@pytest.mark.parametrize("pipeline", ["default", "tensorrt"])
def test_a_slope_of_higher_rank_raises_the_rank(slope, out, pipeline):
    model = _model(slope)  # declared [2, 4], as inference states it
    want = run_at(model, X, "disable")["z"]
    assert want.shape == tuple(int(d) for d in out.split(","))  # onnxruntime: both ways
    optimized = graphopt.optimize(model, pipeline)
    assert "Gemm" not in ops(optimized)
    got = run_at(optimized, X, "disable")["z"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("slope", [(3,), (1, 3), (2, 3), ()])
def test_a_slope_of_x_rank_or_lower_still_makes_a_gemm(slope):
    model = _model(slope)
    optimized = graphopt.optimize(model, "default")
    assert ops(optimized) == ["PRelu", "Gemm"]
    want = run_at(model, X, "disable")["z"]
    np.testing.assert_allclose(run_at(optimized, X, "disable")["z"], want, rtol=1e-5, atol=1e-6)
