"""layout passes: Transpose/Reshape chains and nested Concats around detection heads."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from graphopt.api import optimize_with_report
from graphopt.ir import Graph
from graphopt.passes.base import PassContext
from graphopt.passes.layout import composed_perm
from graphopt.pipeline import PassManager, make_pipeline
from tests import models_util
from tests.conftest import assert_same_outputs
from tests.models_util import ops

F32 = np.float32
HEADER = '<ir_version: 8, opset_import: ["" : 13]>\n'


def first_node_target(model: onnx.ModelProto) -> np.ndarray:
    """The value of the initializer the model's first node reads as input 1 (a Reshape's
    target)."""
    name = model.graph.node[0].input[1]
    return next(onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


def parse(text: str) -> onnx.ModelProto:
    return models_util.parse(HEADER + text)


def run(model: onnx.ModelProto, *passes: str) -> onnx.ModelProto:
    return models_util.run(model, "constants-to-initializers", *passes, "eliminate-dead-code")


def attr(node: onnx.NodeProto, name: str):
    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(F32)


def test_composed_perm_matches_numpy():
    x = rand(2, 3, 4, 5)
    p, q = [0, 2, 3, 1], [3, 1, 0, 2]
    np.testing.assert_array_equal(
        np.transpose(np.transpose(x, p), q), np.transpose(x, composed_perm(p, q))
    )


def test_consecutive_transposes_merge_into_one():
    model = parse(
        """
        g (float[2, 3, 4, 5] x) => (float[3, 2, 5, 4] y) {
          a = Transpose <perm = [0, 2, 3, 1]> (x)
          y = Transpose <perm = [3, 0, 2, 1]> (a)
        }
        """
    )
    out = run(model, "merge-transposes")
    assert ops(out) == ["Transpose"]
    assert list(attr(out.graph.node[0], "perm")) == [1, 0, 3, 2]
    assert out.graph.node[0].output[0] == "y"
    assert_same_outputs(model, out, {"x": rand(2, 3, 4, 5)})


def test_transposes_that_cancel_are_removed():
    model = parse(
        """
        g (float[2, 3, 4] x) => (float[2, 3, 4] y) {
          a = Transpose <perm = [0, 2, 1]> (x)
          b = Transpose <perm = [0, 2, 1]> (a)
          y = Relu (b)
        }
        """
    )
    out = run(model, "merge-transposes")
    assert ops(out) == ["Relu"]
    assert_same_outputs(model, out, {"x": rand(2, 3, 4)})


def test_transpose_with_other_readers_stays_for_them():
    model = parse(
        """
        g (float[2, 3, 4] x) => (float[2, 4, 3] y, float[4, 2, 3] z) {
          y = Transpose <perm = [0, 2, 1]> (x)
          z = Transpose <perm = [1, 0, 2]> (y)
        }
        """
    )
    out = run(model, "merge-transposes")
    assert ops(out) == ["Transpose", "Transpose"]
    assert out.graph.node[1].input[0] == "x"  # both now read x directly
    assert_same_outputs(model, out, {"x": rand(2, 3, 4)})


def test_reshape_chain_keeps_only_the_last():
    model = parse(
        """
        g (float[2, 3, 4] x) => (float[4, 6] y) {
          s1 = Constant <value = int64[2] {6, 4}> ()
          a = Reshape (x, s1)
          ax = Constant <value = int64[1] {0}> ()
          b = Unsqueeze (a, ax)
          s2 = Constant <value = int64[2] {4, -1}> ()
          y = Reshape (b, s2)
        }
        """
    )
    out = run(model, "merge-reshapes")
    assert ops(out) == ["Reshape"]
    assert out.graph.node[0].input[0] == "x"
    assert_same_outputs(model, out, {"x": rand(2, 3, 4)})


def test_reshape_with_zero_entries_resolved_from_static_intermediate():
    model = parse(
        """
        g (float[2, 3, 4] x) => (float[6, 2, 2] y) {
          s1 = Constant <value = int64[3] {6, 2, 2}> ()
          a = Reshape (x, s1)
          s2 = Constant <value = int64[3] {0, 2, -1}> ()
          y = Reshape (a, s2)
        }
        """
    )
    out = run(model, "merge-reshapes")
    assert ops(out) == ["Reshape"]
    target = first_node_target(out)
    np.testing.assert_array_equal(target, [6, 2, -1])
    assert_same_outputs(model, out, {"x": rand(2, 3, 4)})


def test_reshape_with_zero_copying_a_dynamic_dim_is_refused():
    # the inner Reshape infers dim 0 (-1) rather than copying x's (0, which would merge)
    model = parse(
        """
        g (float[N, 12] x) => (float[N, 3, 4] y) {
          s1 = Constant <value = int64[3] {-1, 3, 4}> ()
          a = Reshape (x, s1)
          s2 = Constant <value = int64[3] {0, 3, -1}> ()
          y = Reshape (a, s2)
        }
        """
    )
    out, report = optimize_with_report(
        model,
        make_pipeline("t", ["constants-to-initializers", "merge-reshapes", "eliminate-dead-code"]),
        explain=True,
    )
    assert ops(out) == ["Reshape", "Reshape"]
    assert any("dynamic" in r[3] for r in report.explain if r[0] == "merge-reshapes")
    assert_same_outputs(model, out, {"x": rand(3, 12)})


def test_transpose_moving_only_unit_dims_becomes_a_reshape():
    model = parse(
        """
        g (float[N, 1, 8, 1] x) => (float[N, 8, 1, 1] y) {
          y = Transpose <perm = [0, 2, 1, 3]> (x)
        }
        """
    )
    out = run(model, "transpose-to-reshape")
    assert ops(out) == ["Reshape"]
    assert out.graph.node[0].output[0] == "y"
    target = onnx.numpy_helper.to_array(out.graph.initializer[0])
    np.testing.assert_array_equal(target, [-1, 8, 1, 1])
    for n in (1, 3):
        assert_same_outputs(model, out, {"x": rand(n, 1, 8, 1)})


@pytest.mark.parametrize(
    "shape,perm,out",
    [
        ("2, 3, 1", "[1, 0, 2]", "3, 2, 1"),
        ("N, 1, M", "[2, 1, 0]", "M, 1, N"),
        ("0, 1, 5", "[1, 0, 2]", "1, 0, 5"),  # a Reshape target would read 0 as "copy"
    ],
    ids=["swaps-real-dims", "two-dynamic-dims", "zero-size-dim"],
)
def test_real_transposes_stay(shape, perm, out):
    model = parse(
        f"""
        g (float[{shape}] x) => (float[{out}] y) {{
          y = Transpose <perm = {perm}> (x)
        }}
        """
    )
    out = run(model, "transpose-to-reshape")
    assert ops(out) == ["Transpose"]


def test_nested_concats_on_the_same_axis_flatten():
    model = parse(
        """
        g (float[1, 2] a, float[1, 3] b, float[1, 4] c) => (float[1, 15] y) {
          inner = Concat <axis = 1> (b, c)
          deeper = Concat <axis = -1> (a, inner)
          y = Concat <axis = 1> (a, deeper, c)
        }
        """
    )
    out = run(model, "merge-concats")
    assert ops(out) == ["Concat"]
    assert list(out.graph.node[0].input) == ["a", "a", "b", "c", "c"]
    assert out.graph.node[0].output[0] == "y"
    feeds = {"a": rand(1, 2), "b": rand(1, 3), "c": rand(1, 4)}
    assert_same_outputs(model, out, feeds)


def test_a_concat_read_again_through_a_flattened_one_is_not_removed():
    # t feeds inner and y; y = Concat(inner, t): flattening inner left t read once more, by y,
    # and t was then flattened too and its node removed: Concat(b, t, a, c) read a tensor
    # nothing produced any more (the checker and onnxruntime refused the model)
    model = parse(
        """
        g (float[1, 2] a, float[1, 3] b, float[1, 4] c) => (float[1, 15] y) {
          t = Concat <axis = 1> (a, c)
          inner = Concat <axis = 1> (b, t)
          y = Concat <axis = 1> (inner, t)
        }
        """
    )
    out = run(model, "merge-concats")
    onnx.checker.check_model(out, full_check=True)
    feeds = {"a": rand(1, 2), "b": rand(1, 3), "c": rand(1, 4)}
    assert_same_outputs(model, out, feeds)


def test_concat_on_another_axis_or_with_other_readers_stays():
    model = parse(
        """
        g (float[2, 2] a, float[2, 2] b) => (float[2, 8] y, float[2, 4] z) {
          s = Constant <value = int64[2] {2, 4}> ()
          rows = Concat <axis = 0> (a, b)
          z = Concat <axis = 1> (a, b)
          r = Reshape (rows, s)
          y = Concat <axis = 1> (r, z)
        }
        """
    )
    out = run(model, "merge-concats")
    assert ops(out).count("Concat") == 3  # z is a graph output; rows is on axis 0
    feeds = {"a": rand(2, 2), "b": rand(2, 2)}
    assert_same_outputs(model, out, feeds)


def test_ir3_models_get_no_new_initializers():
    # IR < 4: every initializer must also be a graph input, so no pass may add one to a graph
    # that stays at IR 3 (a Graph run directly); `optimize` raises the IR first (weights are
    # then weights), and the rewrite applies
    model = onnx.parser.parse_model(
        """
        <ir_version: 3, opset_import: ["" : 8]>
        g (float[2, 1, 8] x) => (float[2, 8, 1] y) {
          y = Transpose <perm = [0, 2, 1]> (x)
        }
        """
    )
    graph = Graph(onnx.ModelProto.FromString(model.SerializeToString()))
    ctx = PassContext(record_explanations=True)
    PassManager(make_pipeline("t", ["transpose-to-reshape"])).run(graph, ctx)
    out = graph.commit()
    onnx.checker.check_model(out, full_check=True)
    assert ops(out) == ["Transpose"]
    assert any("IR < 4" in r[3] for r in ctx.explain)
    out, _ = optimize_with_report(model, make_pipeline("t", ["transpose-to-reshape"]))
    onnx.checker.check_model(out, full_check=True)
    assert out.ir_version >= 4 and ops(out) == ["Reshape"]


FOCUS = """
g (float[1, 3, 8, 8] x) => (float[1, 3, 4, 4] y, float[1, 3, 4, 4] z) {
  s0 = Constant <value = int64[1] {0}> ()
  s1 = Constant <value = int64[1] {1}> ()
  e = Constant <value = int64[1] {9223372036854775807}> ()
  a2 = Constant <value = int64[1] {2}> ()
  a3 = Constant <value = int64[1] {-1}> ()
  k = Constant <value = int64[1] {2}> ()
  rows = Slice(x, s0, e, a2, k)
  y = Slice(rows, s0, e, a3, k)
  z = Slice(rows, s1, e, a3, k)
}
"""


def test_slices_of_a_slice_on_other_axes_merge_like_yolox_focus():
    model = parse(FOCUS)
    out = run(model, "merge-slices")
    assert ops(out) == ["Slice", "Slice"]  # the row slice is merged into both readers
    for node in out.graph.node:
        assert node.input[0] == "x"
        axes = models_util.initializer(out, node.input[3])
        assert sorted(axes.tolist()) == [2, 3]  # -1 normalised with the known rank
    assert_same_outputs(model, out, {"x": rand(1, 3, 8, 8)})


def test_slices_on_the_same_axis_or_with_other_readers_are_kept():
    same_axis = parse(
        FOCUS.replace(
            "a3 = Constant <value = int64[1] {-1}>", "a3 = Constant <value = int64[1] {2}>"
        ).replace(
            "(float[1, 3, 4, 4] y, float[1, 3, 4, 4] z)",
            "(float[1, 3, 2, 8] y, float[1, 3, 2, 8] z)",
        )
    )
    out, report = optimize_with_report(
        same_axis, make_pipeline("t", ["merge-slices"]), explain=True
    )
    assert ops(out).count("Slice") == 3
    assert any("same axis" in reason for *_, reason in report.explain)
    other_reader = parse(
        FOCUS.replace(
            "(float[1, 3, 4, 4] y, float[1, 3, 4, 4] z)",
            "(float[1, 3, 4, 4] y, float[1, 3, 4, 8] z)",
        ).replace("z = Slice(rows, s1, e, a3, k)", "z = Relu(rows)")
    )
    out = run(other_reader, "merge-slices")
    assert ops(out).count("Slice") == 2
    assert_same_outputs(other_reader, out, {"x": rand(1, 3, 8, 8)})


def _transpose_after_relu(x: str, declared: str) -> onnx.ModelProto:
    """x → Relu → t → Transpose(perm [0, 2, 1]) → y, with t's value_info declaring `declared`."""
    a, b, c = x.split(",")
    model = parse(
        f"""
        g (float[{a}, {b}, {c}] x) => (float[{a}, {c}, {b}] y) {{
          t = Relu (x)
          y = Transpose <perm = [0, 2, 1]> (t)
        }}
        """
    )
    dims = [int(d) if d.isdigit() else d for d in declared.split(",")]
    model.graph.value_info.append(
        onnx.helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, dims)
    )
    return model


def test_declared_value_info_refutes_without_shape_inference(monkeypatch):
    # value_info says t is [1, 4, 5]: perm [0, 2, 1] swaps two dims > 1, no Reshape can do it;
    # the pass skips it without running shape inference (which costs ~7 ms on common_det).
    from graphopt.analysis import shapes

    def no_inference(*args, **kwargs):
        raise AssertionError("shape inference ran")

    monkeypatch.setattr(shapes, "_infer", no_inference)
    model = _transpose_after_relu("1,4,5", "1,4,5")
    assert ops(run(model, "transpose-to-reshape")) == ["Relu", "Transpose"]


def test_declared_value_info_that_allows_a_reshape_is_confirmed_by_inference():
    # Declared [1, 4, 1] (true): only one dim > 1 moves, so inference decides, and rewrites.
    model = _transpose_after_relu("1,4,1", "1,4,1")
    assert ops(run(model, "transpose-to-reshape")) == ["Relu", "Reshape"]
    # Declared with an unknown dim: nothing is refuted, inference decides the same way.
    model = _transpose_after_relu("1,4,1", "1,4,N")
    out = run(model, "transpose-to-reshape")
    assert ops(out) == ["Relu", "Reshape"]
    assert_same_outputs(model, out, {"x": rand(1, 4, 1)})


def test_declared_graph_output_refutes_without_shape_inference(monkeypatch):
    # No value_info for t, but y is a graph output declared [1, 5, 4]: t is [1, 4, 5] (the
    # inverse permutation), two dims > 1 swap; layout_cdla's eight head Transposes are this case.
    from graphopt.analysis import shapes

    def no_inference(*args, **kwargs):
        raise AssertionError("shape inference ran")

    monkeypatch.setattr(shapes, "_infer", no_inference)
    model = _transpose_after_relu("1,4,5", "1,4,5")
    del model.graph.value_info[:]
    assert ops(run(model, "transpose-to-reshape")) == ["Relu", "Transpose"]


# torch dynamo's `x.view(S, 1, 3, 192).unsqueeze(0)` (khmersm 1.4.2's attention, once the
# target's runtime dim is -1): one Reshape with the 1s in place
UNSQUEEZED_RESHAPE = """
g (float[S, 12] x) => (float[1, S, 1, 3, 1, 4] y) {
  s = Constant <value = int64[4] {TARGET}> ()
  a = Reshape (x, s)
  ax = Constant <value = int64[2] {AXES}> ()
  y = Unsqueeze (a, ax)
}
"""


@pytest.mark.parametrize("axes", ["0, 4", "-6, -2", "4, 0"])
def test_unsqueeze_of_a_reshape_becomes_one_reshape(axes):
    model = parse(UNSQUEEZED_RESHAPE.replace("TARGET", "-1, 1, 3, 4").replace("AXES", axes))
    out = run(model, "merge-reshapes")
    assert ops(out) == ["Reshape"]
    target = first_node_target(out)
    np.testing.assert_array_equal(target, [1, -1, 1, 3, 1, 4])
    for s in (1, 5):
        assert_same_outputs(model, out, {"x": rand(s, 12)})


def test_unsqueeze_of_a_reshape_copying_a_dim_or_read_elsewhere_stays():
    # a 0 copies a dim of the Reshape's input, which the Unsqueeze's axes would shift
    zero = parse(UNSQUEEZED_RESHAPE.replace("TARGET", "0, 1, 3, 4").replace("AXES", "0, 4"))
    assert ops(run(zero, "merge-reshapes")) == ["Reshape", "Unsqueeze"]
    # the inner Reshape's output is read by another node too: nothing to save
    shared = UNSQUEEZED_RESHAPE.replace("TARGET", "-1, 1, 3, 4").replace("AXES", "0, 4")
    shared = shared.replace(
        "float[1, S, 1, 3, 1, 4] y)", "float[1, S, 1, 3, 1, 4] y, float[S, 1, 3, 4] z)"
    )
    shared = shared.replace("  y = Unsqueeze (a, ax)", "  y = Unsqueeze (a, ax)\n  z = Relu (a)")
    assert ops(run(parse(shared), "merge-reshapes")) == ["Reshape", "Unsqueeze", "Relu"]


# torch's mask[:, None, None, :] of a T5 encoder: two Unsqueezes (traceforge-title-model 0.2.0)
TWO_UNSQUEEZES = """
g (float[B, S] x) => (float[OUT] y) {
  a1 = Constant <value = int64[AN1] {AXES1}> ()
  u = Unsqueeze (x, a1)
  a2 = Constant <value = int64[AN2] {AXES2}> ()
  y = Unsqueeze (u, a2)
}
"""


@pytest.mark.parametrize(
    ("first", "second", "out_shape", "merged"),
    [
        ("1", "2", "B, 1, 1, S", [1, 2]),
        ("0", "0", "1, 1, B, S", [0, 1]),
        ("2", "0", "1, B, S, 1", [0, 3]),
        ("-1", "1", "B, 1, S, 1", [1, 3]),  # a negative axis: x's rank is read
        ("0, 3", "1, -1", "1, 1, B, S, 1, 1", [0, 1, 4, 5]),
    ],
)
def test_unsqueeze_of_an_unsqueeze_becomes_one(first, second, out_shape, merged):
    text = (
        TWO_UNSQUEEZES.replace("AXES1", first)
        .replace("AXES2", second)
        .replace("AN1", str(first.count(",") + 1))
        .replace("AN2", str(second.count(",") + 1))
        .replace("OUT", out_shape)
    )
    model = parse(text)
    out = run(model, "merge-reshapes")
    assert ops(out) == ["Unsqueeze"]
    np.testing.assert_array_equal(first_node_target(out), merged)
    for b, s in ((2, 3), (1, 1)):
        assert_same_outputs(model, out, {"x": rand(b, s)})


def test_unsqueeze_of_an_unsqueeze_read_elsewhere_stays():
    text = TWO_UNSQUEEZES.replace("AXES1", "1").replace("AXES2", "2").replace("AN1", "1")
    text = text.replace("AN2", "1").replace(
        "float[OUT] y)", "float[B, 1, 1, S] y, float[B, 1, S] z)"
    )
    text = text.replace("  y = Unsqueeze (u, a2)", "  y = Unsqueeze (u, a2)\n  z = Relu (u)")
    assert ops(run(parse(text), "merge-reshapes")) == ["Unsqueeze", "Unsqueeze", "Relu"]


def test_constant_inputs_empty_along_the_axis_leave_a_concat():
    # torch's Concat(Shape(m), []) of a T5 decoder: the empty constant adds nothing; an input
    # empty along another axis than the Concat's does add (its other dims) and stays
    model = parse(
        """
        g (int64[B, S] m, float[N] v, float[2, 0] p) => (float[B, S] y, float[4, 0] z) {
          sh = Shape (m)
          e = Constant <value = int64[0] {}> ()
          c = Concat <axis = 0> (sh, e)
          y = Reshape (v, c)
          q = Constant <value = float[2, 0] {}> ()
          z = Concat <axis = 0> (p, q)
        }
        """
    )
    out = run(model, "merge-concats", "eliminate-noops")
    assert ops(out) == ["Shape", "Reshape", "Concat"]
    feeds = {
        "m": np.ones((2, 3), np.int64),
        "v": rand(6),
        "p": np.zeros((2, 0), F32),
    }
    assert_same_outputs(model, out, feeds)
