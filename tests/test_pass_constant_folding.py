"""constant-folding: numpy kernels agree with onnxruntime; what is folded and what is refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import helper

from graphopt.analysis.fold_kernels import KERNELS, evaluate, evaluate_with_onnxruntime
from graphopt.api import optimize_with_report
from graphopt.errors import BackendError
from graphopt.passes.constant_folding import ConstantFolding
from graphopt.passes.constants import ConstantsToInitializers
from graphopt.pipeline import make_pipeline
from tests.conftest import assert_same_outputs
from tests.models_util import initializer, ops, parse, run

I64 = np.int64
F32 = np.float32


# ---------------------------------------------------------------- kernels vs onnxruntime

A = np.array([[-7, 5, 3], [9, -4, 6]], dtype=I64)
B = np.array([[2, -3, 3], [-2, 4, 5]], dtype=I64)
X = np.arange(24, dtype=F32).reshape(2, 3, 4) - 11.5

KERNEL_CASES = [
    # (op, attrs, inputs, opset)
    ("Shape", {}, [X], 13),
    ("Shape", {"start": 1, "end": -1}, [X], 15),
    ("Size", {}, [X], 13),
    ("Gather", {"axis": 1}, [X, np.array([[-1, 0]], I64)], 13),
    ("Gather", {}, [np.array([4, 5, 6], I64), np.array(2, I64)], 13),
    ("Unsqueeze", {"axes": [0, -1]}, [X], 11),
    ("Unsqueeze", {}, [X, np.array([1, 4], I64)], 13),
    ("Squeeze", {}, [X[:1, :, :1], np.array([0, -1], I64)], 13),
    ("Squeeze", {"axes": [0]}, [X[:1]], 11),
    ("Concat", {"axis": -1}, [A, B], 13),
    ("Reshape", {}, [X, np.array([0, -1], I64)], 13),
    ("Reshape", {}, [X, np.array([4, 0, 2], I64)], 13),
    ("Cast", {"to": onnx.TensorProto.INT32}, [X], 13),
    ("Cast", {"to": onnx.TensorProto.FLOAT}, [A], 13),
    ("Cast", {"to": onnx.TensorProto.BOOL}, [A], 13),
    ("Add", {}, [A, B], 13),
    ("Sub", {}, [X, X[0]], 13),
    ("Mul", {}, [A, np.array(3, I64)], 13),
    ("Div", {}, [A, B], 13),  # integer division truncates toward zero
    ("Div", {}, [X, np.full((4,), 3.0, F32)], 13),
    ("Mod", {}, [A, B], 13),
    ("Mod", {"fmod": 1}, [A, B], 13),
    ("Neg", {}, [A], 13),
    ("Equal", {}, [A, B], 13),
    ("Less", {}, [A, B], 13),
    ("Greater", {}, [X, np.array(0.0, F32)], 13),
    ("Not", {}, [A > 0], 13),
    ("And", {}, [A > 0, B > 0], 13),
    ("Where", {}, [A > 0, A, B], 13),
    ("Min", {}, [A, B, np.array(0, I64)], 13),
    ("Max", {}, [A, B], 13),
    (
        "Slice",
        {},
        [
            X,
            np.array([1, -1], I64),
            np.array([100, -4], I64),
            np.array([2, 1], I64),
            np.array([1, -1], I64),
        ],
        13,
    ),
    ("Slice", {}, [X, np.array([-100], I64), np.array([2], I64)], 13),
    (
        "Slice",
        {},
        [X, np.array([5], I64), np.array([-100], I64), np.array([-1], I64), np.array([-2], I64)],
        13,
    ),
    (
        "Slice",
        {},
        [
            X,
            np.array([-1], I64),
            np.array([np.iinfo(I64).min], I64),
            np.array([2], I64),
            np.array([-1], I64),
        ],
        13,
    ),
    (
        "Slice",
        {},
        [
            X,
            np.array([0], I64),
            np.array([np.iinfo(I64).max], I64),
            np.array([-2], I64),
            np.array([3], I64),
        ],
        13,
    ),
    ("Slice", {"starts": [0, 1], "ends": [1, 1000], "axes": [0, 2]}, [X], 9),
    ("Range", {}, [np.array(1, I64), np.array(11, I64), np.array(3, I64)], 13),
    ("Range", {}, [np.array(5, I64), np.array(-5, I64), np.array(-2, I64)], 13),
    ("Range", {}, [np.array(0.5, F32), np.array(2.0, F32), np.array(0.25, F32)], 13),
    ("ConstantOfShape", {}, [np.array([2, 3], I64)], 13),
    (
        "ConstantOfShape",
        {"value": onnx.numpy_helper.from_array(np.array([7], I64))},
        [np.array([3], I64)],
        13,
    ),
    ("Transpose", {"perm": [2, 0, 1]}, [X], 13),
    ("Transpose", {}, [X], 13),
    ("Expand", {}, [np.array([[1], [2]], I64), np.array([3, 1, 4], I64)], 13),
    ("Tile", {}, [A, np.array([2, 1], I64)], 13),
    ("ReduceProd", {"axes": [1], "keepdims": 0}, [A], 13),
    ("ReduceSum", {}, [A, np.array([0], I64)], 13),
    ("Identity", {}, [A], 13),
    # empty axes: onnxruntime squeezes every dim of 1, as when no axes are given
    ("Squeeze", {}, [np.ones((2, 1, 3), F32), np.array([], I64)], 13),
    # an empty reduction: numpy refuses it (no identity for max), onnxruntime gives -inf (an
    # integer one is not evaluated: 1.23.2 gives 0, 1.32 int64 min; test_h124_fold_agreement)
    ("ReduceMax", {"keepdims": 0}, [np.zeros((0, 3), F32)], 13),
]


@pytest.mark.parametrize("case", KERNEL_CASES, ids=lambda c: f"{c[0]}-opset{c[3]}")
def test_numpy_kernel_matches_onnxruntime(case):
    op, attrs, inputs, opset = case
    assert op in KERNELS
    node = helper.make_node(op, [f"i{k}" for k in range(len(inputs))], ["o"], **attrs)
    ours = evaluate(node, inputs, opset)
    theirs = evaluate_with_onnxruntime(node, inputs, opset)
    assert len(ours) == len(theirs) == 1
    assert ours[0].dtype == theirs[0].dtype
    assert ours[0].shape == theirs[0].shape
    np.testing.assert_array_equal(ours[0], theirs[0])


# integer sums and products that may pass the dtype's range (or 2^53): onnxruntime 1.23.2
# accumulates in the integer type and wraps, 1.32.0 in double and saturates; not evaluated
OVERFLOWING_REDUCTIONS = [
    ("ReduceSum", {"keepdims": 0}, [np.array([[2**31 - 1, 1, 0]], np.int32), np.array([1], I64)]),
    ("ReduceSum", {}, [np.array([[2**63 - 1, 1]], I64), np.array([1], I64)]),
    ("ReduceProd", {"axes": [1], "keepdims": 0}, [np.array([[2**62, 2, 1], [3, -1, 2]], I64)]),
    ("ReduceProd", {"axes": [0]}, [np.array([[2**31 - 1], [2]], np.int32)]),
    # in range, but 1.32's double accumulator drops the 7 next to -2^63
    ("ReduceSum", {"keepdims": 0}, [np.array([-(2**63), 7, 2**63 - 1], I64), np.array([], I64)]),
]


@pytest.mark.parametrize("case", OVERFLOWING_REDUCTIONS, ids=lambda c: c[0])
def test_an_integer_reduction_that_may_overflow_is_not_evaluated(case):
    op, attrs, inputs = case
    node = helper.make_node(op, [f"i{k}" for k in range(len(inputs))], ["o"], **attrs)
    with pytest.raises(BackendError, match="may overflow"):
        evaluate(node, inputs, 13)


@pytest.mark.parametrize(
    "opset,attrs,extra",
    [
        (11, {"axis": 1, "split": [1, 3]}, []),
        (13, {"axis": 1}, [np.array([3, 1], I64)]),
        (13, {"axis": -1}, []),
        (18, {"axis": 1, "num_outputs": 2}, []),
    ],
)
def test_split_kernel_matches_onnxruntime(opset, attrs, extra):
    data = np.arange(8, dtype=F32).reshape(2, 4)
    n = 2
    inputs = [data, *extra]
    node = helper.make_node("Split", [f"i{k}" for k in range(len(inputs))], ["a", "b"][:n], **attrs)
    ours = evaluate(node, inputs, opset)
    theirs = evaluate_with_onnxruntime(node, inputs, opset)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unsupported_cases_fall_back_to_onnxruntime():
    # Sqrt has no numpy kernel
    node = helper.make_node("Sqrt", ["x"], ["y"])
    (out,) = evaluate(node, [np.array([4.0, 9.0], F32)], 13)
    np.testing.assert_array_equal(out, [2.0, 3.0])


# ---------------------------------------------------------------- the pass

SHAPE_CHAIN = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 12] x) => (float[2, 3, 4] y) {
  dims = Constant <value = int64[3] {2, 3, 4}> ()
  idx = Constant <value = int64[2] {1, 2}> ()
  picked = Gather (dims, idx)
  first = Constant <value = int64[1] {2}> ()
  target = Concat <axis = 0> (first, picked)
  as_int = Cast <to = 6> (target)
  back = Cast <to = 7> (as_int)
  y = Reshape (x, back)
}
"""


def test_shape_arithmetic_chain_folds_into_one_initializer():
    model = parse(SHAPE_CHAIN)
    out, report = optimize_with_report(
        model,
        make_pipeline(
            "t", ["constants-to-initializers", "constant-folding", "eliminate-dead-code"]
        ),
    )
    onnx.checker.check_model(out, full_check=True)
    assert ops(out) == ["Reshape"]
    reshape = out.graph.node[0]
    np.testing.assert_array_equal(initializer(out, reshape.input[1]), [2, 3, 4])
    assert reshape.input[1] == "back"  # the folded tensor keeps its name
    assert report.totals()["constant-folding"]["folded"] == 4
    assert_same_outputs(model, out, {"x": np.arange(24, dtype=F32).reshape(2, 12)})


def test_fallback_op_is_folded_through_onnxruntime():
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[3] x) => (float[3] y) {
          c = Constant <value = float[3] {1.0, 4.0, 9.0}> ()
          s = Sqrt (c)
          e = Exp (s)
          y = Add (x, e)
        }
        """
    )
    out = run(model, "constants-to-initializers", "constant-folding", "eliminate-dead-code")
    assert ops(out) == ["Add"]
    np.testing.assert_allclose(initializer(out, "e"), np.exp([1.0, 2.0, 3.0]), rtol=1e-6)
    assert_same_outputs(model, out, {"x": np.ones(3, F32)})


def test_split_and_slice_of_constants_fold():
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
          c = Constant <value = float[6] {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}> ()
          sizes = Constant <value = int64[2] {2, 4}> ()
          a, b = Split <axis = 0> (c, sizes)
          st = Constant <value = int64[1] {1}> ()
          en = Constant <value = int64[1] {3}> ()
          s = Slice (b, st, en)
          t = Add (a, s)
          y = Mul (x, t)
        }
        """
    )
    out = run(model, "constants-to-initializers", "constant-folding", "eliminate-dead-code")
    assert ops(out) == ["Mul"]
    np.testing.assert_array_equal(initializer(out, "t"), [5.0, 7.0])
    assert_same_outputs(model, out, {"x": np.array([1.0, -2.0], F32)})


def test_random_ops_are_never_folded():
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
          c = Constant <value = float[2] {1.0, 2.0}> ()
          r = RandomNormalLike (c)
          d = Mul (r, c)
          y = Add (x, d)
        }
        """
    )
    out = run(model, "constants-to-initializers", "constant-folding")
    assert ops(out) == ["RandomNormalLike", "Mul", "Add"]


def test_quantize_dequantize_of_constant_weights_is_kept():
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
          w = Constant <value = int8[2] {10, -20}> ()
          s = Constant <value = float {0.5}> ()
          z = Constant <value = int8 {0}> ()
          wf = DequantizeLinear (w, s, z)
          y = Mul (x, wf)
        }
        """
    )
    out = run(model, "constants-to-initializers", "constant-folding")
    assert ops(out) == ["DequantizeLinear", "Mul"]


def test_size_limit_refuses_blowing_up_but_allows_shrinking():
    text = """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1000] x) => (float[1000] y, float[1] m) {
          shape = Constant <value = int64[1] {1000}> ()
          big = ConstantOfShape <value = float[1] {1.0}> (shape)
          y = Add (x, big)
          big2 = Constant <value = float[1000] {VALUES}> ()
          k = ReduceMax <keepdims = 1> (big2)
          m = Identity (k)
        }
    """.replace("VALUES", ", ".join(["2.0"] * 1000))
    model = parse(text)
    # the default limit (2**20 elements) lets the 1000-element ConstantOfShape fold
    out = run(model, "constants-to-initializers", "constant-folding")
    assert "ConstantOfShape" not in ops(out)
    assert "ReduceMax" not in ops(out)
    # with a limit of 100 it is refused, with the reason recorded; the ReduceMax (1 element out
    # of 1000 in) still folds because it shrinks the model
    small = ConstantFolding(size_limit=100)
    out, report = optimize_with_report(
        model, make_pipeline("t", [ConstantsToInitializers(), small]), explain=True
    )
    assert "ConstantOfShape" in ops(out)
    assert "ReduceMax" not in ops(out)
    reasons = [r for r in report.explain if r[0] == "constant-folding" and r[2] == "refused"]
    assert any("exceeds size_limit=100" in r[3] for r in reasons)
    assert_same_outputs(model, out, {"x": np.arange(1000, dtype=F32)})


def test_node_producing_a_graph_output_is_not_folded():
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y, int64[1] n) {
          c = Constant <value = int64[1] {3}> ()
          n = Neg (c)
          y = Identity (x)
        }
        """
    )
    out = run(model, "constants-to-initializers", "constant-folding")
    assert ops(out) == ["Neg", "Identity"]
    assert [o.name for o in out.graph.output] == ["y", "n"]


def test_shape_of_static_tensor_folds_and_dynamic_does_not():
    static = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 3] x) => (float[6] y) {
          r = Relu (x)
          s = Shape (r)
          n = ReduceProd <keepdims = 1> (s)
          y = Reshape (r, n)
        }
        """
    )
    out = run(static, "constant-folding", "eliminate-dead-code")
    assert ops(out) == ["Relu", "Reshape"]
    np.testing.assert_array_equal(initializer(out, "n"), [6])
    feeds = {"x": np.arange(6, dtype=F32).reshape(2, 3) - 2}
    assert_same_outputs(static, out, feeds)

    dynamic = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 3] x) => (float[M] y) {
          r = Relu (x)
          s = Shape (r)
          n = ReduceProd <keepdims = 1> (s)
          y = Reshape (r, n)
        }
        """
    )
    out = run(dynamic, "constant-folding", "eliminate-dead-code")
    assert ops(out) == ["Relu", "Shape", "ReduceProd", "Reshape"]


def test_folding_respects_opset_attribute_forms():
    model = parse(
        """
        <ir_version: 6, opset_import: ["" : 11]>
        g (float[1, 2] x) => (float[1, 2] y) {
          c = Constant <value = float[2] {3.0, 4.0}> ()
          u = Unsqueeze <axes = [0]> (c)
          y = Add (x, u)
        }
        """
    )
    out = run(model, "constants-to-initializers", "constant-folding", "eliminate-dead-code")
    assert ops(out) == ["Add"]
    assert initializer(out, "u").shape == (1, 2)
    assert_same_outputs(model, out, {"x": np.ones((1, 2), F32)})


def test_integer_division_by_zero_is_refused_not_crashing():
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (int64[1] x) => (int64[1] y) {
          a = Constant <value = int64[1] {7}> ()
          b = Constant <value = int64[1] {0}> ()
          d = Div (a, b)
          y = Add (x, d)
        }
        """
    )
    # refused (onnxruntime 1.23 and 1.24 die of SIGFPE on it): the node stays as it is
    out = run(model, "constants-to-initializers", "constant-folding")
    assert "Div" in ops(out)


@pytest.mark.parametrize(
    ("op", "dtype", "fmod"),
    [
        ("Div", "int64", 0),
        ("Div", "int32", 0),
        ("Div", "uint8", 0),
        ("Mod", "int64", 0),
        ("Mod", "int32", 1),
        ("Mod", "uint16", 0),
    ],
)
def test_integer_division_by_zero_never_reaches_onnxruntime(monkeypatch, op, dtype, fmod):
    """onnxruntime 1.23.2 (the newest for Python 3.10) and 1.24.1 kill the process with SIGFPE
    on an integer Div or Mod by zero (1.25+ raise); the fold handed it every such node."""
    from graphopt.analysis import fold_kernels

    def no_session(*args, **kwargs):
        raise AssertionError("integer division by zero was handed to onnxruntime")

    monkeypatch.setattr(fold_kernels, "evaluate_with_onnxruntime", no_session)
    attrs = f" <fmod = {fmod}>" if op == "Mod" else ""
    model = parse(
        f"""
        <ir_version: 8, opset_import: ["" : 14]>
        g ({dtype}[2] x) => ({dtype}[2] y) {{
          a = Constant <value = {dtype}[2] {{7, 6}}> ()
          b = Constant <value = {dtype}[2] {{2, 0}}> ()
          d = {op}{attrs} (a, b)
          y = Add (x, d)
        }}
        """
    )
    pipeline = make_pipeline("t", [ConstantsToInitializers(), ConstantFolding()])
    out, report = optimize_with_report(model, pipeline, explain=True)
    assert op in ops(out)
    word = "division" if op == "Div" else "modulo"
    assert any(
        r[2] == "refused" and r[3].endswith(f"integer {word} by zero") for r in report.explain
    ), report.explain


def test_a_sequence_of_constants_is_refused_not_crashing():
    """SequenceConstruct of constants evaluates to a list (onnx's `test_if_opt` has one in an If
    branch): only tensors become initializers; it was an AttributeError."""
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (int64 i) => (float[3] y) {
          a = Constant <value = float[3] {1, 2, 3}> ()
          s = SequenceConstruct (a, a)
          y = SequenceAt (s, i)
        }
        """
    )
    out, report = optimize_with_report(
        model, make_pipeline("t", ["constants-to-initializers", "constant-folding"]), explain=True
    )
    assert ops(out) == ["SequenceConstruct", "SequenceAt"]
    refused = [r for r in report.explain if r[1] == "SequenceConstruct_1" and r[2] == "refused"]
    assert refused and "one tensor per output" in refused[0][3]
    assert_same_outputs(model, out, {"i": np.array(1, I64)})
