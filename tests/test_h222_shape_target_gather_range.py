"""simplify-shape-subgraphs writes the Concat-target -1 only for a Gather of dims whose index is
in range. Reshape(x[N, 6], Concat(Gather(Shape(x), [5]), [6])) fails in onnxruntime at every
feed ('indices element out of data bounds': x's rank is 2 by its declaration); the target
became [-1, 6] and the rewritten model ran (default, ort-cpu and tensorrt pipelines), for a
[5] index and for Unsqueeze(Gather(Shape(x), 5)) alike."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, run_at, run_passes


def reshape_by_dim(index: int, scalar: bool) -> onnx.ModelProto:
    """Reshape(x[N, 6], Concat(dim `index` of Shape(x), [6]))."""
    if scalar:
        pick = f"""i = Constant<value = int64 {{{index}}}>()
          g = Gather(s, i)
          z = Constant<value = int64[1] {{0}}>()
          d = Unsqueeze(g, z)"""
    else:
        pick = f"""i = Constant<value = int64[1] {{{index}}}>()
          d = Gather(s, i)"""
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 6] x) => (float[a, b] y) {{
          s = Shape(x)
          {pick}
          c = Constant<value = int64[1] {{6}}>()
          t = Concat<axis = 0>(d, c)
          y = Reshape(x, t)
        }}"""
    )


def x_feed(n: int) -> dict[str, np.ndarray]:
    return {"x": np.linspace(-1.0, 1.0, n * 6, dtype=np.float32).reshape(n, 6)}


def target_is_constant(model: onnx.ModelProto) -> bool:
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    return reshape.input[1] in {t.name for t in model.graph.initializer}


@pytest.mark.parametrize("scalar", [False, True], ids=["index-1d", "index-scalar"])
@pytest.mark.parametrize("index", [5, -3])
@pytest.mark.parametrize("pipeline", ["pass", "default", "tensorrt"])
def test_an_index_out_of_range_keeps_the_target(index, scalar, pipeline):
    model = reshape_by_dim(index, scalar)
    if pipeline == "pass":
        out, _ = run_passes(model, ["simplify-shape-subgraphs"])
    else:
        out = graphopt.optimize(model, pipeline)
    assert not target_is_constant(out)
    for n in (1, 2):
        with pytest.raises(Exception, match="out of data bounds"):
            run_at(model, x_feed(n), level="disable")
        with pytest.raises(Exception, match="out of data bounds"):
            run_at(out, x_feed(n), level="disable")


@pytest.mark.parametrize("scalar", [False, True], ids=["index-1d", "index-scalar"])
@pytest.mark.parametrize("index", [0, -2])
def test_an_index_in_range_still_gets_the_minus_one(index, scalar):
    model = reshape_by_dim(index, scalar)
    out, _ = run_passes(model, ["simplify-shape-subgraphs"])
    assert target_is_constant(out)
    for n in (1, 3):
        want = run_at(model, x_feed(n), level="disable")["y"]
        np.testing.assert_array_equal(run_at(out, x_feed(n), level="disable")["y"], want)


def reshape_by_picked_dims(indices: str) -> onnx.ModelProto:
    """Reshape(x[N, 6], Concat(Gather(Shape(x), `indices`)[0:1], [6]))."""
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 6] x) => (float[a, b] y) {{
          s = Shape(x)
          i = Constant<value = int64[2] {{{indices}}}>()
          g = Gather(s, i)
          st = Constant<value = int64[1] {{0}}>()
          en = Constant<value = int64[1] {{1}}>()
          d = Slice(g, st, en)
          c = Constant<value = int64[1] {{6}}>()
          t = Concat<axis = 0>(d, c)
          y = Reshape(x, t)
        }}"""
    )


@pytest.mark.parametrize("indices", ["0, 7", "-3, 0"])
@pytest.mark.parametrize("pipeline", ["pass", "default"])
def test_a_slice_of_dims_gathered_out_of_range_keeps_the_target(indices, pipeline):
    # the Slice picks one element of a tensor of dims whose length rested on the Gather
    model = reshape_by_picked_dims(indices)
    if pipeline == "pass":
        out, _ = run_passes(model, ["simplify-shape-subgraphs"])
    else:
        out = graphopt.optimize(model, pipeline)
    assert not target_is_constant(out)
    for n in (1, 2):
        with pytest.raises(Exception, match="out of data bounds"):
            run_at(model, x_feed(n), level="disable")
        with pytest.raises(Exception, match="out of data bounds"):
            run_at(out, x_feed(n), level="disable")


def test_a_slice_of_dims_gathered_in_range_still_gets_the_minus_one():
    model = reshape_by_picked_dims("0, 1")
    out, _ = run_passes(model, ["simplify-shape-subgraphs"])
    assert target_is_constant(out)
    for n in (1, 3):
        want = run_at(model, x_feed(n), level="disable")["y"]
        np.testing.assert_array_equal(run_at(out, x_feed(n), level="disable")["y"], want)
