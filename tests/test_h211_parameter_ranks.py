"""constant-folding and eliminate-noops leave alone a node whose parameter input (axes, split,
repeats, starts, pads, a shape) or ConstantOfShape `value` has a rank onnxruntime refuses
(H211). The numpy kernels and the no-op rules read them flattened: Squeeze of 0-d axes,
ReduceSum of 2-d axes, Split of a 2-d split, Slice of 2-d starts, Tile of 2-d repeats and
ConstantOfShape of a 0-d shape or of a value that is not one element of shape [1] folded (an
empty value failed the pass with an IndexError); Tile of 2-d ones, Slice of 2-d whole bounds
and Pad of 2-d zeros were bypassed. Each original is refused by onnxruntime, and the result now
as well, in all pipelines (2-d Pad pads of a constant were refused before too: a guard)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.backends.onnxruntime import probe_failure, run, session

PIPELINES = ("default", "ort-cpu", "tensorrt")
FEEDS = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
SIX = "c = Constant<value = float[6] {1, 2, 3, 4, 5, 6}>()\n"


def _model(opset: int, body: str, inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    model = onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : {opset}]>
        g (float[2,3] x) => (float[2,3] y) {{ {body} }}"""
    )
    for name, value in inits.items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


K = {"k": np.array([2, 3])}

INVALID = {
    "squeeze-0d-axes": (
        13,
        "c = Constant<value = float[1,3] {1, 2, 3}>()\n a = Constant<value = int64 {0}>()\n"
        " r = Squeeze(c, a)\n y = Add(x, r)",
        {},
        "Squeeze",
    ),
    "reduce-sum-2d-axes": (
        13,
        "c = Constant<value = int64[3] {1, 2, 3}>()\n a = Constant<value = int64[1,1] {0}>()\n"
        " r = ReduceSum<keepdims = 0>(c, a)\n f = Cast<to = 1>(r)\n y = Add(x, f)",
        {},
        "ReduceSum",
    ),
    "split-2d-split": (
        13,
        SIX + " s = Constant<value = int64[2,1] {3, 3}>()\n a, b = Split(c, s)\n"
        " r = Concat<axis = 0>(b, a)\n t = Reshape(r, k)\n y = Add(x, t)",
        K,
        "Split",
    ),
    "slice-2d-starts": (
        13,
        SIX + " s = Constant<value = int64[1,1] {0}>()\n e = Constant<value = int64[1,1] {6}>()\n"
        " r = Slice(c, s, e)\n t = Reshape(r, k)\n y = Add(x, t)",
        K,
        "Slice",
    ),
    "tile-2d-repeats": (
        13,
        "c = Constant<value = float[1,3] {1, 2, 3}>()\n p = Constant<value = int64[1,2] {2, 1}>()\n"
        " r = Tile(c, p)\n y = Add(x, r)",
        {},
        "Tile",
    ),
    "constant-of-shape-0d-shape": (
        13,
        "s = Constant<value = int64 {3}>()\n r = ConstantOfShape(s)\n y = Add(x, r)",
        {},
        "ConstantOfShape",
    ),
    "constant-of-shape-0d-value": (
        13,
        "s = Constant<value = int64[1] {3}>()\n r = ConstantOfShape<value = float {5}>(s)\n"
        " y = Add(x, r)",
        {},
        "ConstantOfShape",
    ),
    "constant-of-shape-two-values": (
        13,
        "s = Constant<value = int64[1] {3}>()\n r = ConstantOfShape<value = float[2] {5, 6}>(s)\n"
        " y = Add(x, r)",
        {},
        "ConstantOfShape",
    ),
    "constant-of-shape-empty-value": (
        13,
        "s = Constant<value = int64[1] {3}>()\n r = ConstantOfShape<value = float[0] {}>(s)\n"
        " y = Add(x, r)",
        {},
        "ConstantOfShape",
    ),
    "pad-2d-pads": (
        13,
        "c = Constant<value = float[1,2] {1, 2}>()\n p = Constant<value = int64[2,2] {1, 0, 0, 1}>()\n"
        " r = Pad(c, p)\n y = Add(x, r)",
        {},
        "Pad",
    ),
    "noop-tile-2d-ones": (
        13,
        "s = Tile(x, p)\n y = Neg(s)",
        {"p": np.ones((1, 2), np.int64)},
        "Tile",
    ),
    "noop-slice-2d-whole": (
        13,
        "s = Slice(x, st, en)\n y = Neg(s)",
        {"st": np.zeros((1, 1), np.int64), "en": np.full((1, 1), 9, np.int64)},
        "Slice",
    ),
    "noop-pad-2d-zeros": (
        13,
        "s = Pad(x, p)\n y = Neg(s)",
        {"p": np.zeros((2, 2), np.int64)},
        "Pad",
    ),
}


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("case", sorted(INVALID))
def test_a_parameter_of_a_rank_onnxruntime_refuses_is_not_read_flattened(case: str, pipeline: str):
    opset, body, inits, op = INVALID[case]
    model = _model(opset, body, inits)
    assert probe_failure(model, FEEDS) is not None  # onnxruntime refuses the original
    out = graphopt.optimize(model, pipeline)
    assert op in [n.op_type for n in out.graph.node]
    assert probe_failure(out, FEEDS) is not None


VALID = {
    "unsqueeze-0d-axes": (
        13,
        "c = Constant<value = float[3] {1, 2, 3}>()\n a = Constant<value = int64 {0}>()\n"
        " r = Unsqueeze(c, a)\n y = Add(x, r)",
        {},
    ),
    "constant-of-shape-value-of-shape-1": (
        13,
        "s = Constant<value = int64[1] {3}>()\n r = ConstantOfShape<value = float[1] {5}>(s)\n"
        " y = Add(x, r)",
        {},
    ),
    "slice-1d-starts": (
        13,
        SIX + " s = Constant<value = int64[1] {0}>()\n e = Constant<value = int64[1] {6}>()\n"
        " r = Slice(c, s, e)\n t = Reshape(r, k)\n y = Add(x, t)",
        K,
    ),
    "pad-1d-pads": (
        13,
        "c = Constant<value = float[1,2] {1, 2}>()\n p = Constant<value = int64[4] {1, 0, 0, 1}>()\n"
        " r = Pad(c, p)\n y = Add(x, r)",
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_parameters_of_the_rank_onnxruntime_takes_still_fold(case: str):
    opset, body, inits = VALID[case]
    model = _model(opset, body, inits)
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Add"]
    want = run(session(model, level="disable"), FEEDS)
    got = run(session(out, level="disable"), FEEDS)
    np.testing.assert_array_equal(got["y"], want["y"])
