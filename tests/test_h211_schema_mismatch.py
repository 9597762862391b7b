"""constant-folding and eliminate-noops leave alone a node that is not one of its op's schema
at the model's opset (H211): an attribute the op does not have there (Squeeze's `axes` from
opset 13, Split's `num_outputs` before 18, a misspelt one), a required one missing (Concat's
`axis`), an input of a type the op does not take (Gather's float indices), a Transpose perm of
another length than the rank or with a negative axis (numpy takes one), Reshape's allowzero
with both a 0 and a -1. onnxruntime refuses each original; the numpy kernels and the no-op
rules read them under another version's meaning (or ignored what they did not know) and made
a model that runs, or failed the pass with a KeyError. Each case is refused by onnxruntime
before and after `optimize`, in all pipelines."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.backends.onnxruntime import probe_failure

PIPELINES = ("default", "ort-cpu", "tensorrt")
FEEDS = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}


def _model(opset: int, body: str, output: str = "float[2,3] y") -> onnx.ModelProto:
    # (not checked: onnx's checker refuses these nodes too, as onnxruntime does)
    return onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : {opset}]>
        g (float[2,3] x) => ({output}) {{ {body} }}"""
    )


INVALID = {
    "squeeze-13-axes-attribute": (
        13,
        "c = Constant<value = float[1,3] {1, 2, 3}>()\n s = Squeeze<axes = [0]>(c)\n y = Add(x, s)",
        "Squeeze",
    ),
    "split-13-num-outputs": (
        13,
        "c = Constant<value = float[6] {1, 2, 3, 4, 5, 6}>()\n a, b = Split<num_outputs = 2>(c)\n"
        " d = Concat<axis = 0>(b, a)\n r = Reshape(d, k)\n y = Add(x, r)",
        "Split",
    ),
    "reduce-sum-11-noop-with-empty-axes": (
        11,
        "c = Constant<value = int64[3] {1, 2, 3}>()\n r = ReduceSum<noop_with_empty_axes = 1>(c)\n"
        " f = Cast<to = 1>(r)\n y = Add(x, f)",
        "ReduceSum",
    ),
    "neg-unknown-attribute": (
        13,
        "c = Constant<value = float[3] {1, 2, 3}>()\n r = Neg<foo = 1>(c)\n y = Add(x, r)",
        "Neg",
    ),
    "gather-float-indices": (
        13,
        "c = Constant<value = float[3] {1, 2, 3}>()\n i = Constant<value = float[3] {2, 1, 0}>()\n"
        " r = Gather(c, i)\n y = Add(x, r)",
        "Gather",
    ),
    "concat-without-axis": (
        13,
        "c = Constant<value = float[3] {1, 2, 3}>()\n d = Concat(c, c)\n r = Reshape(d, k)\n"
        " y = Add(x, r)",
        "Concat",
    ),
    "reshape-allowzero-zero-and-minus-one": (
        14,
        "c = Constant<value = float[0] {}>()\n s = Constant<value = int64[2] {0, -1}>()\n"
        " e = Reshape<allowzero = 1>(c, s)\n n = Shape(e)\n f = Cast<to = 1>(n)\n"
        " y = Add(x, f)",
        "Reshape",
    ),
    "transpose-constant-perm-longer-than-rank": (
        13,
        "c = Constant<value = float[2,3] {1, 2, 3, 4, 5, 6}>()\n"
        " t = Transpose<perm = [0, 1, 2]>(c)\n y = Add(x, t)",
        "Transpose",
    ),
    "transpose-constant-negative-perm": (
        13,
        "c = Constant<value = float[3,2] {1, 2, 3, 4, 5, 6}>()\n"
        " t = Transpose<perm = [1, -2]>(c)\n y = Add(x, t)",
        "Transpose",
    ),
    "noop-squeeze-13-axes-attribute": (13, "s = Squeeze<axes = [0]>(x)\n y = Neg(s)", "Squeeze"),
    "noop-identity-unknown-attribute": (13, "s = Identity<foo = 1>(x)\n y = Neg(s)", "Identity"),
    "noop-transpose-perm-longer-than-rank": (
        13,
        "s = Transpose<perm = [0, 1, 2]>(x)\n y = Neg(s)",
        "Transpose",
    ),
    "noop-transpose-perm-shorter-than-rank": (
        13,
        "s = Transpose<perm = [0]>(x)\n y = Neg(s)",
        "Transpose",
    ),
}


def _with_shape_constant(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([2, 3]), "k"))
    return model


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("case", sorted(INVALID))
def test_a_node_onnxruntime_refuses_is_neither_folded_nor_bypassed(case: str, pipeline: str):
    opset, body, op = INVALID[case]
    model = _with_shape_constant(_model(opset, body))
    assert probe_failure(model, FEEDS) is not None  # onnxruntime refuses the original
    out = graphopt.optimize(model, pipeline)
    assert op in [n.op_type for n in out.graph.node]
    assert probe_failure(out, FEEDS) is not None  # and the result, as it did


VALID = {
    "squeeze-11-axes-attribute": (
        11,
        "c = Constant<value = float[1,3] {1, 2, 3}>()\n s = Squeeze<axes = [0]>(c)\n y = Add(x, s)",
        "Squeeze",
    ),
    "split-18-num-outputs": (
        18,
        "c = Constant<value = float[6] {1, 2, 3, 4, 5, 6}>()\n a, b = Split<num_outputs = 2>(c)\n"
        " d = Concat<axis = 0>(b, a)\n r = Reshape(d, k)\n y = Add(x, r)",
        "Split",
    ),
    "gather-int32-indices": (
        13,
        "c = Constant<value = float[3] {1, 2, 3}>()\n i = Constant<value = int32[3] {2, -2, 0}>()\n"
        " r = Gather(c, i)\n y = Add(x, r)",
        "Gather",
    ),
    "reshape-allowzero-minus-one": (
        14,
        "c = Constant<value = float[6] {1, 2, 3, 4, 5, 6}>()\n s = Constant<value = int64[2] {2, -1}>()\n"
        " r = Reshape<allowzero = 1>(c, s)\n y = Add(x, r)",
        "Reshape",
    ),
    "noop-transpose-identity-perm": (
        13,
        "s = Transpose<perm = [0, 1]>(x)\n y = Neg(s)",
        "Transpose",
    ),
    "noop-squeeze-11-nothing-to-squeeze": (11, "s = Squeeze(x)\n y = Neg(s)", "Squeeze"),
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_the_same_nodes_valid_at_their_opset_still_go(case: str):
    opset, body, op = VALID[case]
    model = _with_shape_constant(_model(opset, body))
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model)
    assert op not in [n.op_type for n in out.graph.node]
    assert probe_failure(out, FEEDS) is None
    from graphopt.backends.onnxruntime import run, session

    want = run(session(model, level="disable"), FEEDS)
    got = run(session(out, level="disable"), FEEDS)
    np.testing.assert_array_equal(got["y"], want["y"])


@pytest.mark.parametrize("op", ["Identity", "Cast<to = 1>"])
def test_a_no_op_with_an_output_too_many_keeps_it(op: str):
    """Identity (or Cast) with two outputs, the second read: the rule bypassed the first and
    removed the node, leaving the second without a producer (a model the checker refuses as
    not topologically sorted, where the original was refused for its output count)."""
    model = _model(13, f"a, b = {op}(x)\n y = Add(a, b)")
    assert probe_failure(model, FEEDS) is not None
    for pipeline in PIPELINES:
        out = graphopt.optimize(model, pipeline)
        produced = {o for n in out.graph.node for o in n.output}
        assert {"a", "b"} <= produced or {"y", "b"} <= produced
        assert all(i in produced or i == "x" for n in out.graph.node for i in n.input)
