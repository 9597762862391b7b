"""No rewrite from dims that ONNX inference, which the checker and onnxruntime's loader run,
counts otherwise.

MaxPool(kernel 1, stride 2, ceil_mode=1) of a 4×4 map: onnxruntime drops the last window
(it would start past the input): [1, 1, 2, 2]; ONNX 1.23 inference keeps it: [1, 1, 3, 3].
graphopt's shape facts hold onnxruntime's count (`graphopt.analysis.runtime_shapes`); rewrites
proven from them left models that onnx.checker (full) and onnxruntime's loader refuse:

* merge-reshapes: Reshape(Flatten(y, 3), [0, -1]) → Reshape(y, [4, -1]): inference cannot
  divide its 9 elements by 4 ("Dimension could not be inferred: incompatible shapes");
* simplify-shape-subgraphs: Reshape(y, Concat([2], a dim of another input)) →
  Reshape(y, [2, -1]) (the same), and Add(y, ConstantOfShape(Shape(y))) with Shape(y) folded
  to [1, 1, 2, 2] ("Incompatible dimensions": inference still has y as [1, 1, 3, 3]);
* eliminate-noops: Reshape(y, [1, 1, 2, 2]) → MatMul(·, W[2, 3]) bypassed hands the MatMul
  inference's [1, 1, 3, 3] ("Incompatible dimensions for matrix multiplication").

Each model is checked and run as it is and rewritten, onnxruntime's optimizations off (its
own, on, refuse some of the originals the same way).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, run_at, run_passes

POOL = "y = MaxPool<kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1>(x)"
X = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
HEADER = '<ir_version: 8, opset_import: ["" : 13]>'


def _flatten_then_reshape() -> onnx.ModelProto:
    return build(
        f"""{HEADER} g (float[1, 1, 4, 4] x) => (float[a, b] z) {{
            {POOL}
            u = Flatten<axis=3>(y)
            z = Reshape(u, s)
        }}""",
        {"s": np.array([0, -1], np.int64)},
    )


def _reshape_by_another_input_s_dim() -> onnx.ModelProto:
    return build(
        f"""{HEADER} g (float[1, 1, 4, 4] x, float[N] w) => (float[a, b] z) {{
            {POOL}
            s = Shape(w)
            n = Gather(s, i)
            d = Unsqueeze(n, ax)
            t = Concat<axis=0>(c, d)
            z = Reshape(y, t)
        }}""",
        {
            "c": np.array([2], np.int64),
            "i": np.array(0, np.int64),
            "ax": np.array([0], np.int64),
        },
    )


def _ones_of_its_shape() -> onnx.ModelProto:
    return build(
        f"""{HEADER} g (float[1, 1, 4, 4] x) => (float[a, b, c, d] z) {{
            {POOL}
            s = Shape(y)
            o = ConstantOfShape<value = float[1] {{1}}>(s)
            z = Add(y, o)
        }}"""
    )


def _reshape_to_its_own_shape_then_matmul() -> onnx.ModelProto:
    return build(
        f"""{HEADER} g (float[1, 1, 4, 4] x) => (float[a, b, c, d] z) {{
            {POOL}
            u = Reshape(y, s)
            z = MatMul(u, m)
        }}""",
        {
            "s": np.array([1, 1, 2, 2], np.int64),
            "m": np.arange(6, dtype=np.float32).reshape(2, 3),
        },
    )


FEEDS = {"x": X}
CASES = {
    "flatten-then-reshape": (_flatten_then_reshape, "merge-reshapes", FEEDS),
    "reshape-by-another-input-s-dim": (
        _reshape_by_another_input_s_dim,
        "simplify-shape-subgraphs",
        {"x": X, "w": np.zeros(2, np.float32)},
    ),
    "ones-of-its-shape": (_ones_of_its_shape, "simplify-shape-subgraphs", FEEDS),
    "reshape-to-its-own-shape": (
        _reshape_to_its_own_shape_then_matmul,
        "eliminate-noops",
        FEEDS,
    ),
}


def assert_same_outputs(
    model: onnx.ModelProto, out: onnx.ModelProto, feeds: dict[str, np.ndarray]
) -> None:
    expected, got = run_at(model, feeds, "disable"), run_at(out, feeds, "disable")
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_result_checks_loads_and_keeps_the_outputs(case: str) -> None:
    make, rule, feeds = CASES[case]
    model = make()
    out, _ = run_passes(model, [rule])  # (onnx.checker, full check)
    assert_same_outputs(model, out, feeds)


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
@pytest.mark.parametrize(
    "case", ["flatten-then-reshape", "reshape-by-another-input-s-dim", "reshape-to-its-own-shape"]
)
def test_the_pipelines_result_checks_and_loads(case: str, pipeline: str) -> None:
    make, _rule, feeds = CASES[case]
    model = make()
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    assert_same_outputs(model, out, feeds)


def test_where_inference_agrees_the_rewrites_still_apply() -> None:
    """The same subgraphs on a map of the pool's output size, no pool: all rewritten."""
    model = build(
        f"""{HEADER} g (float[1, 1, 2, 2] y, float[N] w) => (float[a, b] z, float[p, q] v,
                                                          float[e, f, g, h] k) {{
            u = Flatten<axis=3>(y)
            z = Reshape(u, s)
            sw = Shape(w)
            n = Gather(sw, i)
            d = Unsqueeze(n, ax)
            t = Concat<axis=0>(c, d)
            v = Reshape(y, t)
            r = Reshape(y, own)
            k = MatMul(r, m)
        }}""",
        {
            "s": np.array([0, -1], np.int64),
            "c": np.array([2], np.int64),
            "i": np.array(0, np.int64),
            "ax": np.array([0], np.int64),
            "own": np.array([1, 1, 2, 2], np.int64),
            "m": np.arange(6, dtype=np.float32).reshape(2, 3),
        },
    )
    out, report = run_passes(
        model, ["merge-reshapes", "simplify-shape-subgraphs", "eliminate-noops"]
    )
    applied = {r for r, _n, o, _why in report.explain if o == "applied"}
    assert applied >= {"merge-reshapes", "simplify-shape-subgraphs", "eliminate-noops"}
    feeds = {"y": X[:, :, :2, :2], "w": np.zeros(2, np.float32)}
    assert_same_outputs(model, out, feeds)
