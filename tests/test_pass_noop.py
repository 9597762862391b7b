"""eliminate-noops: each rule removes what it proves to be a no-op, and refuses the rest."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from graphopt.api import optimize, optimize_with_report
from graphopt.backends import onnxruntime as ort_backend
from graphopt.pipeline import make_pipeline
from tests.conftest import assert_same_outputs
from tests.models_util import ops, parse, run

F32 = np.float32


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    from graphopt.backends.onnxruntime import example_feeds

    return example_feeds(model, seed=seed, default_dim=2)


def check(text: str, expected_ops: list[str], opset: int = 13) -> onnx.ModelProto:
    """Parse `text` (graph body, x float[2,3,4] → y), run eliminate-noops, compare outputs."""
    model = parse(text.replace("OPSET", str(opset)))
    out = run(model, "constants-to-initializers", "eliminate-noops", "eliminate-dead-code")
    assert ops(out) == expected_ops
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    assert_same_outputs(model, out, feeds_for(model))
    return out


HEADER = '<ir_version: 8, opset_import: ["" : OPSET]>\n'


@pytest.mark.parametrize(
    "body,expected",
    [
        ("i = Identity (x)\n y = Relu (i)", ["Relu"]),
        ("c = Cast <to = 1> (x)\n y = Relu (c)", ["Relu"]),
        ("t = Transpose <perm = [0, 1, 2]> (x)\n y = Relu (t)", ["Relu"]),
        (
            "p = Constant <value = int64[6] {0,0,0,0,0,0}> ()\n q = Pad (x, p)\n y = Relu (q)",
            ["Relu"],
        ),
        ("c = Concat <axis = 1> (x)\n y = Relu (c)", ["Relu"]),
        ("c = Sum (x)\n y = Relu (c)", ["Relu"]),
        ("c = Max (x)\n y = Relu (c)", ["Relu"]),
        ("s = Split <axis = 1> (x)\n y = Relu (s)", ["Relu"]),
        ("r = Constant <value = int64[3] {1, 1, 1}> ()\n t = Tile (x, r)\n y = Relu (t)", ["Relu"]),
        ("s = Constant <value = int64[2] {3, 1}> ()\n e = Expand (x, s)\n y = Relu (e)", ["Relu"]),
        (
            "s = Constant <value = int64[3] {2, 3, 4}> ()\n r = Reshape (x, s)\n y = Relu (r)",
            ["Relu"],
        ),
        (
            "s = Constant <value = int64[3] {0, -1, 4}> ()\n r = Reshape (x, s)\n y = Relu (r)",
            ["Relu"],
        ),
        ("a = Constant <value = int64[0] {}> ()\n u = Unsqueeze (x, a)\n y = Relu (u)", ["Relu"]),
        ("q = Squeeze (x)\n y = Relu (q)", ["Relu"]),
        (
            "b = Constant <value = int64[2] {0, -100}> ()\n"
            " e = Constant <value = int64[2] {9223372036854775807, 4}> ()\n"
            " a = Constant <value = int64[2] {0, 2}> ()\n"
            " s = Slice (x, b, e, a)\n y = Relu (s)",
            ["Relu"],
        ),
        ("o = Constant <value = float {1.0}> ()\n m = Mul (o, x)\n y = Relu (m)", ["Relu"]),
        (
            "z = Constant <value = float[4] {-0.0, -0.0, -0.0, -0.0}> ()\n a = Add (x, z)\n"
            " y = Relu (a)",
            ["Relu"],
        ),
        ("z = Constant <value = float[1, 1] {0.0}> ()\n a = Sub (x, z)\n y = Relu (a)", ["Relu"]),
        (
            "o = Constant <value = float[3, 1] {1.0, 1.0, 1.0}> ()\n a = Div (x, o)\n y = Relu (a)",
            ["Relu"],
        ),
    ],
    ids=lambda v: v.split("=")[1].split("(")[0].strip().split(" ")[0] if isinstance(v, str) else "",
)
def test_noop_is_removed(body, expected):
    text = HEADER + "g (float[2, 3, 4] x) => (float[2, 3, 4] y) {\n" + body + "\n}"
    check(text, expected)


def test_dropout_in_inference_is_removed_in_every_opset():
    for opset, attrs in ((10, ""), (13, "")):
        text = HEADER + (
            "g (float[2, 3, 4] x) => (float[2, 3, 4] y) {\n"
            f" d = Dropout {attrs}(x)\n y = Relu (d)\n}}"
        )
        check(text, ["Relu"], opset=opset)
    text = HEADER + (
        "g (float[2, 3, 4] x) => (float[2, 3, 4] y) {\n"
        " r = Constant <value = float {0.5}> ()\n"
        " t = Constant <value = bool {0}> ()\n"
        " d = Dropout (x, r, t)\n y = Relu (d)\n}"
    )
    check(text, ["Relu"])


def test_dropout_in_training_mode_or_with_used_mask_is_kept():
    training = HEADER + (
        "g (float[2, 3, 4] x) => (float[2, 3, 4] y) {\n"
        " r = Constant <value = float {0.0}> ()\n"
        " t = Constant <value = bool {1}> ()\n"
        " d = Dropout (x, r, t)\n y = Relu (d)\n}"
    )
    model = parse(training.replace("OPSET", "13"))
    out, report = optimize_with_report(
        model,
        make_pipeline("t", ["constants-to-initializers", "eliminate-noops"]),
        explain=True,
    )
    assert ops(out) == ["Dropout", "Relu"]
    assert any(r[0] == "eliminate-noops" and "training_mode" in r[3] for r in report.explain)

    mask_used = HEADER + (
        "g (float[2, 3, 4] x) => (float[2, 3, 4] y, bool[2, 3, 4] m) {\n"
        " d, m = Dropout (x)\n y = Relu (d)\n}"
    )
    out = run(parse(mask_used.replace("OPSET", "13")), "eliminate-noops")
    assert ops(out) == ["Dropout", "Relu"]


@pytest.mark.parametrize(
    "body",
    [
        "c = Cast <to = 11> (x)\n y = Cast <to = 1> (c)",  # float → double is not a no-op
        "t = Transpose <perm = [0, 2, 1]> (x)\n y = Transpose <perm = [0, 2, 1]> (t)",
        "o = Constant <value = float {2.0}> ()\n y = Mul (x, o)",
        "o = Constant <value = float {1.0}> ()\n y = Sub (o, x)",  # 1 − x is not x
        "z = Constant <value = float {0.0}> ()\n y = Div (z, x)",
    ],
)
def test_look_alikes_are_kept(body):
    text = HEADER + "g (float[2, 3, 4] x) => (float[2, 3, 4] y) {\n" + body + "\n}"
    model = parse(text.replace("OPSET", "13"))
    out = run(model, "constants-to-initializers", "eliminate-noops")
    assert len(out.graph.node) == len(model.graph.node) - sum(
        n.op_type == "Constant" for n in model.graph.node
    )


def test_broadcasting_identity_constant_is_kept():
    # x[3] * ones[2, 3] has shape [2, 3]: removing the Mul would change the output shape
    text = HEADER + (
        "g (float[3] x) => (float[2, 3] y) {\n"
        " o = Constant <value = float[2, 3] {1.0, 1.0, 1.0, 1.0, 1.0, 1.0}> ()\n"
        " y = Mul (x, o)\n}"
    )
    model = parse(text.replace("OPSET", "13"))
    out, report = optimize_with_report(
        model, make_pipeline("t", ["constants-to-initializers", "eliminate-noops"]), explain=True
    )
    assert ops(out) == ["Mul"]
    assert any("broadcasting" in r[3] for r in report.explain if r[2] == "refused")
    assert_same_outputs(model, out, feeds_for(model))


def test_dynamic_reshape_and_squeeze_are_kept():
    text = HEADER + (
        "g (float[N, 3, M] x) => (float[N, 3, M] y, float[K] z) {\n"
        " s = Constant <value = int64[3] {-1, 3, 4}> ()\n"
        " r = Reshape (x, s)\n y = Relu (r)\n"
        " q = Squeeze (x)\n"
        " f = Constant <value = int64[1] {-1}> ()\n"
        " z = Reshape (q, f)\n}"
    )
    model = parse(text.replace("OPSET", "13"))
    out = run(model, "constants-to-initializers", "eliminate-noops")
    # Reshape(x, [-1, 3, 4]) equals x only when M == 4; Squeeze may drop a dynamic dim of 1
    assert ops(out) == ["Reshape", "Relu", "Squeeze", "Reshape"]


def test_symbolic_dims_copied_by_zero_are_a_noop():
    text = HEADER + (
        "g (float[N, 3, M] x) => (float[N, 3, M] y) {\n"
        " s = Constant <value = int64[3] {0, 3, 0}> ()\n"
        " r = Reshape (x, s)\n y = Relu (r)\n}"
    )
    model = parse(text.replace("OPSET", "13"))
    out = run(model, "constants-to-initializers", "eliminate-noops", "eliminate-dead-code")
    assert ops(out) == ["Relu"]
    assert_same_outputs(model, out, {"x": np.ones((2, 3, 5), F32)})


def test_reshape_or_expand_to_its_own_shape_is_a_noop_with_dynamic_dims():
    """Reshape(x, Shape(x)) and Expand(x, Shape(x)) are x whatever x's dims (a 0 dim copies a 0);
    a Shape over part of x's dims (start/end) is another target and stays."""
    text = HEADER + (
        "g (float[N, 3, M] x) => (float[N, 3, M] y, float[N, 3, M] z) {\n"
        " s = Shape (x)\n r = Reshape (x, s)\n y = Relu (r)\n"
        " e = Expand (x, s)\n z = Relu (e)\n}"
    )
    model = parse(text.replace("OPSET", "15"))
    out = run(model, "eliminate-noops", "eliminate-dead-code")
    assert ops(out) == ["Relu", "Relu"]
    for dims in ((2, 3, 4), (0, 3, 4), (1, 3, 12)):
        assert_same_outputs(model, out, {"x": np.arange(np.prod(dims), dtype=F32).reshape(dims)})
    for attrs, y in (("<start = 1>", "3, M"), ("<end = 2>", "1, 3"), ("<end = 3>", "1, 3, M")):
        part = HEADER + (
            f"g (float[1, 3, M] x) => (float[{y}] y) {{\n"
            f" s = Shape {attrs} (x)\n y = Reshape (x, s)\n}}"
        )
        kept = run(parse(part.replace("OPSET", "15")), "eliminate-noops", "eliminate-dead-code")
        assert ops(kept) == ["Shape", "Reshape"], attrs


def test_graph_output_keeps_its_name():
    text = HEADER + (
        "g (float[2, 3, 4] x) => (float[2, 3, 4] y) {\n r = Relu (x)\n y = Identity (r)\n}"
    )
    model = parse(text.replace("OPSET", "13"))
    out = run(model, "eliminate-noops")
    assert ops(out) == ["Relu"]
    assert out.graph.node[0].output[0] == "y"
    assert [o.name for o in out.graph.output] == ["y"]
    assert_same_outputs(model, out, feeds_for(model))


def test_identity_from_graph_input_to_output_is_kept_and_stable():
    text = HEADER + "g (float[2] x) => (float[2] y) {\n y = Identity (x)\n}"
    model = parse(text.replace("OPSET", "13"))
    pipeline = make_pipeline("t", ["eliminate-noops"])
    out, report = optimize_with_report(model, pipeline, explain=True)
    assert ops(out) == ["Identity"]
    assert not report.records[0].changed  # no Identity re-created: a repeat group settles
    assert any("must keep its name" in r[3] for r in report.explain)


def test_noops_chain_removed_in_one_run():
    text = HEADER + (
        "g (float[2, 3, 4] x) => (float[2, 3, 4] y) {\n"
        " a = Identity (x)\n b = Identity (a)\n c = Cast <to = 1> (b)\n y = Identity (c)\n}"
    )
    model = parse(text.replace("OPSET", "13"))
    out = run(model, "eliminate-noops")
    assert ops(out) == ["Identity"]  # x → y needs one node to keep both names
    assert_same_outputs(model, out, feeds_for(model))


def test_squeeze_with_empty_axes_drops_ones_and_is_kept():
    # onnxruntime reads empty axes as "not given" (y is [2, 4]), onnx shape inference as "none"
    # (y is [2, 1, 4]): the node is a no-op under one reading only, so it stays
    for opset, squeeze in (
        (11, " q = Squeeze (x)\n"),
        (13, " a = Constant <value = int64[0] {}> ()\n q = Squeeze (x, a)\n"),
    ):
        text = HEADER + "g (float[2, 1, 4] x) => (float[2, 4] y) {\n" + squeeze + " y = Relu (q)\n}"
        model = onnx.parser.parse_model(text.replace("OPSET", str(opset)))
        if opset < 13:  # the parser cannot write an empty attribute list
            empty = onnx.helper.make_attribute("axes", [], attr_type=onnx.AttributeProto.INTS)
            model.graph.node[0].attribute.append(empty)
        # the two readings disagree on y's rank, so onnx.checker (in `run`) rejects either one
        out = optimize(model, make_pipeline("t", ["constants-to-initializers", "eliminate-noops"]))
        assert ops(out) == ["Squeeze", "Relu"]
        assert_same_outputs(model, out, feeds_for(model))


def test_slice_with_runtime_axes_or_steps_is_kept():
    # [0, 2) is all of axis 0 but not of axis 2; a step of 2 is not a no-op either
    for extra, feeds in (
        ("s = Slice (x, b, e, a)", {"a": np.array([2], np.int64)}),
        ("s = Slice (x, b, e, z, a)", {"a": np.array([2], np.int64)}),
    ):
        text = HEADER + (
            "g (float[2, 3, 4] x, int64[1] a) => (float[A, B, C] y) {\n"
            " b = Constant <value = int64[1] {0}> ()\n"
            " e = Constant <value = int64[1] {2}> ()\n"
            " z = Constant <value = int64[1] {0}> ()\n " + extra + "\n y = Relu (s)\n}"
        )
        model = parse(text.replace("OPSET", "13"))
        out = run(model, "constants-to-initializers", "eliminate-noops")
        assert ops(out) == ["Slice", "Relu"]
        assert_same_outputs(model, out, {"x": np.ones((2, 3, 4), F32), **feeds})


def _lazy_shapes(model: onnx.ModelProto):
    from graphopt.ir import Graph
    from graphopt.passes.base import PassContext
    from graphopt.passes.noop import LazyShapes

    graph = Graph(model)
    return graph, LazyShapes(graph, PassContext())


def test_local_rank_follows_the_spec_without_inference():
    text = HEADER + (
        "g (float[1, 3, 8, 8] x, float[N, 5] v) => (float[1, 4, 64] y, float[N, 5] z) {\n"
        " w = Constant <value = float[4, 3, 1, 1] {1,1,1,1,1,1,1,1,1,1,1,1}> ()\n"
        " c = Conv (x, w)\n s = Sigmoid (c)\n a, b = Split <axis = 1> (s)\n"
        " t = Constant <value = int64[3] {1, 4, -1}> ()\n"
        " m = Concat <axis = 1> (a, b)\n y = Reshape (m, t)\n"
        " k = Constant <value = float[5] {1, 2, 3, 4, 5}> ()\n z = Add (v, k)\n}"
    )
    model = run(parse(text.replace("OPSET", "13")), "constants-to-initializers")
    _graph, shapes = _lazy_shapes(model)
    expected = {"c": 4, "s": 4, "a": 4, "b": 4, "m": 4, "y": 3, "z": 2, "w": 4, "x": 4, "v": 2}
    assert {t: shapes.local_rank(t) for t in expected} == expected
    assert shapes._facts is None  # no shape inference was run


def test_reshape_refuted_by_rank_runs_no_inference(monkeypatch):
    import graphopt.analysis.shapes as shapes_module

    def no_inference(graph):
        raise AssertionError("shape inference ran")

    monkeypatch.setattr(shapes_module, "_infer", no_inference)
    text = HEADER + (
        "g (float[1, 3, 8, 8] x) => (float[1, 3, 64] y) {\n"
        " s = Sigmoid (x)\n t = Constant <value = int64[3] {1, 3, -1}> ()\n"
        " y = Reshape (s, t)\n}"
    )
    model = parse(text.replace("OPSET", "13"))
    assert ops(run(model, "constants-to-initializers", "eliminate-noops")) == ["Sigmoid", "Reshape"]


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "layout_cdla", "ppocr_det"])
def test_local_rank_agrees_with_shape_inference_on_real_models(name, real_model):
    from graphopt.analysis.shapes import shape_facts

    graph, shapes = _lazy_shapes(onnx.load(str(real_model(name))))
    facts = shape_facts(graph)
    compared = 0
    for tensor in [*graph.producer, *graph.initializers]:
        local = shapes.local_rank(tensor)
        if local is not None and facts.rank(tensor) is not None:
            assert local == facts.rank(tensor), tensor
            compared += 1
    assert compared > 0.9 * (len(graph.producer) + len(graph.initializers))


def test_only_restricts_the_ops_and_names_a_typo(tmp_path):
    from graphopt.errors import PipelineError
    from graphopt.passes.noop import EliminateNoops
    from graphopt.pipeline import load_pipeline

    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 3] x) => (float[2, 3] y) {
          a = Identity (x)
          b = Dropout (a)
          c = Cast <to = 1> (b)
          y = Relu (c)
        }
        """
    )
    out = run(model, EliminateNoops(only=["Identity", "Dropout"]))
    assert ops(out) == ["Cast", "Relu"]
    assert_same_outputs(model, out, feeds_for(model))
    bad = tmp_path / "p.yaml"
    bad.write_text("name: p\npasses:\n  - eliminate-noops: {only: [Identiy]}\n")
    with pytest.raises(PipelineError, match=r"p.yaml:3: .*'Identiy' is none of Add, Cast"):
        load_pipeline(bad)


def test_default_pipeline_sees_through_an_identity_chain_in_one_run():
    """paddle2onnx puts Identity between ConvTranspose and its bias Add (PP-OCRv6 det): the
    Add folded only in a second run, after the clean-up loop had removed the Identity."""
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 11]>
        g (float[1, 4, 5, 5] x) => (float[1, 3, 10, 10] z) {
          w = Constant <value = float[4, 3, 2, 2] {
            1, -1, 2, 0, 1, 1, 0, -2, 3, 1, 1, 1, 0, 1, -1, 2, 2, 0, 1, 1, -1, 1, 0, 2,
            1, 2, 0, 1, -1, 0, 1, 1, 2, 1, 0, -1, 1, 1, 1, 0, 0, 2, -1, 1, 1, 0, 2, 1}> ()
          c = Constant <value = float[1, 3, 1, 1] {0.5, -1, 2}> ()
          y = ConvTranspose <strides = [2, 2], kernel_shape = [2, 2]> (x, w)
          i = Identity (y)
          z = Add (i, c)
        }
        """
    )
    once = optimize(model)
    assert ops(once) == ["ConvTranspose"]
    assert ops(optimize(once)) == ["ConvTranspose"]
    assert_same_outputs(model, once, feeds_for(model))


def test_default_pipeline_sees_through_a_no_op_cast_in_one_run():
    """torch puts a float -> float Cast between each Conv and its batch-norm Mul/Add (Yahoo
    open_nsfw: 309 of them): the fold happened only in a second run, after the clean-up loop
    had removed the Cast."""
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1, 2, 4, 4] x) => (float[1, 2, 4, 4] y) {
          w = Constant <value = float[2, 2, 1, 1] {1, -1, 2, 0.5}> ()
          s = Constant <value = float[1, 2, 1, 1] {0.5, -2}> ()
          b = Constant <value = float[1, 2, 1, 1] {1, 3}> ()
          c = Conv (x, w)
          cc = Cast <to = 1> (c)
          m = Mul (cc, s)
          y = Add (m, b)
        }
        """
    )
    once = optimize(model)
    assert ops(once) == ["Conv"]
    assert optimize(once).SerializeToString() == once.SerializeToString()
    assert_same_outputs(model, once, feeds_for(model))


@pytest.mark.parametrize(("op", "zero"), [("Add", "0.0"), ("Sub", "-0.0")])
def test_adding_plus_zero_is_kept_it_turns_minus_zero_into_plus_zero(op, zero):
    """x + 0.0 was removed as a no-op, but −0.0 + 0.0 = +0.0: Reciprocal(x + 0) of x = −0.0 is
    +inf, of x −inf. Only x + (−0.0) and x − (+0.0) are x for every x."""
    text = HEADER.replace("OPSET", "13") + (
        "g (float[2, 3, 4] x) => (float[2, 3, 4] y) {\n"
        f" z = Constant <value = float {{{zero}}}> ()\n a = {op} (x, z)\n y = Reciprocal (a)\n}}"
    )
    model = onnx.parser.parse_model(text)
    out = optimize(model)
    assert [n.op_type for n in out.graph.node] == [op, "Reciprocal"]
    x = np.full((2, 3, 4), -0.0, np.float32)
    got = ort_backend.run(out, {"x": x})["y"]
    assert np.all(got == np.inf)  # 1 / (-0 + 0) = 1 / +0, as the original computes
    np.testing.assert_array_equal(got, ort_backend.run(model, {"x": x})["y"])
