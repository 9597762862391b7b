"""simplify-shape-subgraphs' Concat-target -1 where ONNX inference learns x's count only later.

Reshape(x, Concat([c], a dim of another input)) ⇒ Reshape(x, [c, -1]) is refused where ONNX
inference counts x otherwise than onnxruntime (596489f, b74cde3): the checker and onnxruntime's
loader divide the -1 out of inference's count. But the refusal read only what inference knows
when the rule runs. A Resize whose scales are Dropout(constant) (constant-folding leaves a
Dropout; eliminate-noops, later in every pipeline, drops it) has no output dims to inference
then; once the Dropout is gone, inference scales 10 by 0.7 to 6 where onnxruntime takes 7, or
counts the 4×4 a ceil_mode MaxPool(k 1, s 2) makes of the Resize's 8×8 as 3×3 (onnxruntime
2×2); a Range whose limit is Dropout(-0.7) becomes Range(0.5, -0.7, -0.1): 13 elements to
inference, 12 in onnxruntime 1.32. The -1 written before the Dropout went was then left:
default, ort-cpu and tensorrt gave models the checker and onnxruntime's loader refuse
("Dimension could not be inferred: incompatible shapes"). Each result must check (full), load
and give the original's outputs (onnxruntime, optimizations off).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, ops, run_at

HEADER = '<ir_version: 8, opset_import: ["" : 15]>'
TAIL = """
    so = Shape<start=0, end=1>(o)
    t = Concat<axis=0>(k, so)
    z = Reshape(y, t)
"""


def _resize(scales_node: str, scale: float, k: int = 7) -> onnx.ModelProto:
    return build(
        f"""{HEADER} g (float[1, 1, 10, 10] x, float[N] o) => (float[a, b] z) {{
            s = {scales_node}
            y = Resize<mode="nearest">(x, , s)
            {TAIL}
        }}""",
        {"c": np.array([1, 1, scale, scale], np.float32), "k": np.array([k], np.int64)},
    )


def _pool_after_resize() -> onnx.ModelProto:
    return build(
        f"""{HEADER} g (float[1, 1, 8, 8] x, float[N] o) => (float[a, b] z) {{
            s = Dropout(c)
            r = Resize<mode="nearest">(x, , s)
            y = MaxPool<kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1>(r)
            {TAIL}
        }}""",
        {"c": np.array([1, 1, 0.5, 0.5], np.float32), "k": np.array([2], np.int64)},
    )


def _range_by_dropout() -> onnx.ModelProto:
    return build(
        f"""{HEADER} g (float[N] o) => (float[a, b] z) {{
            l = Dropout(l0)
            y = Range(s0, l, d0)
            {TAIL}
        }}""",
        {
            "s0": np.array(0.5, np.float32),
            "l0": np.array(-0.7, np.float32),
            "d0": np.array(-0.1, np.float32),
            "k": np.array([2], np.int64),
        },
    )


CASES = {
    "resize-scales-behind-dropout": (
        lambda: _resize("Dropout(c)", 0.7),
        {"x": np.arange(100, dtype=np.float32).reshape(1, 1, 10, 10), "o": np.ones(7, np.float32)},
    ),
    "ceil-pool-after-such-a-resize": (
        _pool_after_resize,
        {"x": np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8), "o": np.ones(2, np.float32)},
    ),
    "range-limit-behind-dropout": (_range_by_dropout, {"o": np.ones(6, np.float32)}),
}


def _assert_same_outputs(model: onnx.ModelProto, out: onnx.ModelProto, feeds: dict) -> None:
    expected, got = run_at(model, feeds, "disable"), run_at(out, feeds, "disable")
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value)


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_pipelines_result_checks_loads_and_keeps_the_outputs(case: str, pipeline: str) -> None:
    make, feeds = CASES[case]
    model = make()
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    _assert_same_outputs(model, out, feeds)


def test_where_nothing_is_left_to_learn_the_target_is_still_rewritten() -> None:
    """Scales 2 (one count everywhere), given as a constant: the -1 is written."""
    model = _resize("Identity(c)", 2.0, k=20)
    out = graphopt.optimize(model, "default")
    onnx.checker.check_model(out, full_check=True)
    assert ops(out) == ["Resize", "Reshape"]
    target = next(t for t in out.graph.initializer if t.name == out.graph.node[-1].input[1])
    assert onnx.numpy_helper.to_array(target).tolist() == [20, -1]
    feeds = {"x": np.ones((1, 1, 10, 10), np.float32), "o": np.ones(20, np.float32)}
    _assert_same_outputs(model, out, feeds)


def test_facts_are_inferred_again_when_a_reader_is_rewired_onto_a_constant() -> None:
    """eliminate-noops takes Resize(x, , Dropout(c)) to Resize(x, , c): `c` is a constant the
    facts knew, but the Resize reads it now; the facts of before (no dims for y, nothing
    counted apart) no longer hold for what inference sees: they are inferred again."""
    from graphopt.analysis.shapes import shape_facts
    from graphopt.ir import Graph
    from graphopt.passes.base import PassContext
    from graphopt.passes.noop import dims_inference_counts_apart

    graph = Graph(_resize("Dropout(c)", 0.7))
    ctx = PassContext()
    before = shape_facts(graph, ctx)
    assert before.apart_roots == frozenset() and dims_inference_counts_apart(graph, ctx) == set()
    resize = next(n for n in graph.nodes.values() if n.op_type == "Resize")
    graph.set_input(resize, 2, "c")
    graph.remove_node(next(n for n in graph.nodes.values() if n.op_type == "Dropout").name)
    ctx.invalidate()
    after = shape_facts(graph, ctx)
    assert after is not before
    assert after.shape("y") == (1, 1, None, None)  # not inference's 6 × 6: unknown
    assert {"y", "z"} <= dims_inference_counts_apart(graph, ctx)
