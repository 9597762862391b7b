"""constant-folding and eliminate-noops leave alone what onnxruntime 1.23.2 (the newest for
Python 3.10) and 1.32.0 run apart (H211, measured on both, each case in a process of its own):

- a reduction with noop_with_empty_axes=1 and no axes: 1.23.2 refuses a node without the
  axes input ("Reduction on all axes, output size should be 1"), reduces an empty input all the
  same (ReduceSum of [0] gives [0.0] of shape [1], ReduceMax -inf) or dies of a segmentation
  fault where axes is ""; 1.32 returns the input, as ONNX says;
- a Tile of a 0-d tensor (empty repeats): 1.23.2 refuses it ("must be atleast 1 dimensional"),
  1.32 returns the scalar.

The fold gave 1.32's answer, so the model ran on 1.23 where the original failed, or gave
another value there. The tests check that the node stays; they run no disputed model (1.23.2,
where installed, would die on one), only the cases both versions agree on."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.backends.onnxruntime import run, session

FEEDS = {"x": np.array([0.5, 1.5], np.float32)}


def _model(opset: int, body: str) -> onnx.ModelProto:
    model = onnx.parser.parse_model(
        f"""<ir_version: 9, opset_import: ["" : {opset}]>
        g (float[2] x) => (float y) {{ {body}
          t = ReduceSum<keepdims = 0>(x)
          y = Add(t, s) }}"""
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _sum_of(value: str) -> str:
    return f"f = Cast<to = 1>({value})\n s = ReduceSum<keepdims = 0>(f)"


DISPUTED = {
    "reduce-sum-noop-without-axes-input": (
        13,
        "c = Constant<value = int64[3] {1, 2, 3}>()\n"
        " [disputed] r = ReduceSum<noop_with_empty_axes = 1>(c)\n" + _sum_of("r"),
        "ReduceSum",
    ),
    "reduce-max-noop-without-axes-input": (
        18,
        "c = Constant<value = float[2,2] {1, 2, 3, 4}>()\n"
        " [disputed] r = ReduceMax<noop_with_empty_axes = 1>(c)\n" + _sum_of("r"),
        "ReduceMax",
    ),
    "reduce-prod-noop-of-an-empty-input": (
        18,
        "c = Constant<value = int64[0] {}>()\n a = Constant<value = int64[0] {}>()\n"
        " [disputed] r = ReduceProd<noop_with_empty_axes = 1>(c, a)\n" + _sum_of("r"),
        "ReduceProd",
    ),
    "reduce-mean-noop-of-an-empty-input-blank-axes": (
        18,
        "c = Constant<value = float[2,0] {}>()\n"
        ' [disputed] r = ReduceMean<noop_with_empty_axes = 1>(c, "")\n' + _sum_of("r"),
        "ReduceMean",
    ),
    "tile-of-a-scalar": (
        13,
        "c = Constant<value = float {2.5}>()\n k = Constant<value = int64[0] {}>()\n"
        " [disputed] r = Tile(c, k)\n" + _sum_of("r"),
        "Tile",
    ),
}


@pytest.mark.parametrize("case", sorted(DISPUTED))
def test_what_onnxruntime_versions_run_apart_is_not_folded(case: str):
    opset, body, op = DISPUTED[case]
    model = _model(opset, body)
    for pipeline in ("default", "ort-cpu", "tensorrt"):
        out = graphopt.optimize(model, pipeline)
        assert (op, "disputed") in [(n.op_type, n.name) for n in out.graph.node]


@pytest.mark.parametrize(
    "body",
    [
        # an empty axes tensor of a non-empty input: both versions return the input
        "c = Constant<value = int64[3] {1, 2, 3}>()\n a = Constant<value = int64[0] {}>()\n"
        " r = ReduceSum<noop_with_empty_axes = 1>(c, a)\n" + _sum_of("r"),
        "c = Constant<value = int64[3] {1, 2, 3}>()\n"
        " r = ReduceSum<noop_with_empty_axes = 0>(c)\n" + _sum_of("r"),
        "c = Constant<value = float[1] {2.5}>()\n k = Constant<value = int64[1] {3}>()\n"
        " r = Tile(c, k)\n" + _sum_of("r"),
    ],
)
def test_what_they_agree_on_still_folds(body: str):
    model = _model(13, body)
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["ReduceSum", "Add"]
    want = run(session(model, level="disable"), FEEDS)["y"]
    np.testing.assert_array_equal(run(session(out, level="disable"), FEEDS)["y"], want)


def test_a_tile_of_a_scalar_input_is_not_bypassed():
    model = onnx.parser.parse_model(
        """<ir_version: 9, opset_import: ["" : 13]>
        g (float x) => (float y) { k = Constant<value = int64[0] {}>()
                                   t = Tile(x, k)
                                   y = Neg(t) }"""
    )
    out = graphopt.optimize(model)
    assert "Tile" in [n.op_type for n in out.graph.node]
