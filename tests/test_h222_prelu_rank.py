"""simplify-shape-subgraphs proves a PRelu's rank as the larger of x's and the slope's:
onnxruntime broadcasts the slope both ways (PRelu(a[N], slope[2, 1]) is [2, N]). The rank
proof took x's rank (1), so Shape(p) was one dim and Reshape(z, Concat([4], Shape(p))) got the
target [4, -1]: [4, 6] where onnxruntime gives the original [4, 2, 3] (all pipelines; the
original passes onnx.checker, whose inference states x's shape for PRelu)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, run_at, run_passes


def reshape_by_prelu_shape(slope: str) -> onnx.ModelProto:
    """Reshape(z, Concat([4], Shape(PRelu(a[N], `slope`))))."""
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N] a, float[M] z) => (float[u, v] y) {{
          sl = Constant<value = {slope}>()
          p = PRelu(a, sl)
          s = Shape(p)
          c = Constant<value = int64[1] {{4}}>()
          t = Concat<axis = 0>(c, s)
          y = Reshape(z, t)
        }}"""
    )


def feeds(n: int, z: int) -> dict[str, np.ndarray]:
    return {
        "a": np.linspace(-1.0, 1.0, n, dtype=np.float32),
        "z": np.linspace(-2.0, 2.0, z, dtype=np.float32),
    }


@pytest.mark.parametrize("pipeline", ["pass", "default", "tensorrt", "simplify"])
def test_a_prelu_broadcast_past_x_keeps_its_rank(pipeline):
    model = reshape_by_prelu_shape("float[2, 1] {0.5, 0.25}")
    if pipeline == "pass":
        out, _ = run_passes(model, ["simplify-shape-subgraphs", "eliminate-dead-code"])
    else:
        out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    want = run_at(model, feeds(3, 24), level="disable")["y"]
    assert want.shape == (4, 2, 3)
    np.testing.assert_array_equal(run_at(out, feeds(3, 24), level="disable")["y"], want)


def test_a_prelu_of_x_rank_still_gets_the_minus_one():
    model = reshape_by_prelu_shape("float[1] {0.5}")
    out, _ = run_passes(model, ["simplify-shape-subgraphs", "eliminate-dead-code"])
    reshape = next(n for n in out.graph.node if n.op_type == "Reshape")
    target = next(t for t in out.graph.initializer if t.name == reshape.input[1])
    assert onnx.numpy_helper.to_array(target).tolist() == [4, -1]
    for n in (1, 3):
        want = run_at(model, feeds(n, 4 * n), level="disable")["y"]
        np.testing.assert_array_equal(run_at(out, feeds(n, 4 * n), level="disable")["y"], want)
