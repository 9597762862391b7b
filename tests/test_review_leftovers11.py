"""Review leftovers 11: one opset conversion for every caller, the float16 path's IR version,
segmented initializers (each test fails on the commit before its fix)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import OpsetConversionError
from graphopt.ir.opset_conversion import convert_opset
from tests.conftest import xfail_unless_onnxruntime_rounds_float16_quantize
from tests.test_opset_conversion import _model


def _qdq_conv(opset: int, ir: int) -> onnx.ModelProto:
    """y = Conv(DQ(Q(x)), w): a Q/DQ model as graphopt quantize writes one."""
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(0, np.int8), "xz"),
        numpy_helper.from_array(w, "w"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
        helper.make_node("Conv", ["xd", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
    ]
    return _model(nodes, inits, opset, [1, 3, 8, 8], [1, 4, 8, 8], ir)


def _needed_ir(model: onnx.ModelProto) -> int:
    return onnx.helper.find_min_ir_version_for(list(model.opset_import), True)


# ---------------------------------------------------------------------------------------------
# 1. convert_opset: the one conversion optimize, quantize, merge and the float16 path share


def test_convert_opset_converts_restores_and_raises_the_ir_version() -> None:
    """The sequence each caller spelled: convert, give back what the converter drops, raise
    the IR version to what the new opset needs; the caller's model is left as it was."""
    model = _qdq_conv(13, 7)
    model.graph.node[2].metadata_props.add(key="k", value="v")
    before = model.SerializeToString()
    out = convert_opset(model, 19)
    assert model.SerializeToString() == before
    assert out.opset_import[0].version == 19
    assert out.ir_version == _needed_ir(out) == 9
    assert [(p.key, p.value) for p in out.graph.node[2].metadata_props] == [("k", "v")]
    onnx.checker.check_model(out, full_check=True)


def test_convert_opset_names_why_it_refuses() -> None:
    """A refusal's kind is what each caller's policy reads (keep the opset, or stop)."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    upsample = helper.make_node("Upsample", ["x", "s"], ["y"], mode="linear")
    with pytest.raises(OpsetConversionError, match="would change what the model computes") as e:
        convert_opset(_model([upsample], [scales], 9, [1, 1, 3, 3], [1, 1, 6, 6]), 13)
    assert e.value.kind == "misconverted"
    assert "Upsample in linear mode" in e.value.reason

    with_function = _qdq_conv(13, 8)
    with_function.functions.add().CopyFrom(
        onnx.parser.parse_function(
            '<domain: "local", opset_import: ["" : 13]>\nTwice (a) => (b) {\n  b = Add(a, a)\n}'
        )
    )
    with pytest.raises(OpsetConversionError) as e:
        convert_opset(with_function, 19)
    assert e.value.kind == "local-functions"

    with pytest.raises(OpsetConversionError, match="version_converter failed") as e:
        convert_opset(_qdq_conv(13, 7), 1013)  # no such opset: the converter raises from C++
    assert e.value.kind == "converter-failed"
    assert "invalid version" in e.value.reason


# ---------------------------------------------------------------------------------------------
# 2. the TensorRT float16 path raises the IR version with the opset


def test_fp16_qdq_model_moved_to_opset_19_declares_the_ir_version_19_needs() -> None:
    """Fails on the parent: the float16 path moved an IR-7 / opset-13 Q/DQ model to opset 19
    and kept IR 7 (opset 19 came with IR 9), where optimize, quantize and merge raise it."""
    from graphopt.backends.onnxruntime import run as ort_run
    from graphopt.backends.tensorrt import fp16_model

    model = _qdq_conv(13, 7)
    half = fp16_model(model)
    assert half.opset_import[0].version == 19
    assert half.ir_version >= _needed_ir(half) == 9
    onnx.checker.check_model(half, full_check=True)
    xfail_unless_onnxruntime_rounds_float16_quantize()
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        ort_run(half, {"x": x})["y"], ort_run(model, {"x": x})["y"], rtol=1e-2, atol=1e-2
    )


# ---------------------------------------------------------------------------------------------
# 3. an initializer stored as a segment of a larger tensor is never a known constant


def _segment(t: onnx.TensorProto, begin: int, end: int) -> onnx.TensorProto:
    """`t` marked as elements [begin, end) of a larger tensor: onnx's numpy_helper cannot
    read it ("Currently not supporting loading segments"), so its value is unknown."""
    t.segment.begin = begin
    t.segment.end = end
    return t


def _segments(model: onnx.ModelProto) -> list[bytes]:
    return sorted(t.SerializeToString() for t in model.graph.initializer if t.HasField("segment"))


def _conv_bn_with_segmented_mean() -> onnx.ModelProto:
    """y = BN(Conv(x, w), γ, β, μ, σ²) with μ a segmented initializer."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")]
    for name in ("scale", "bias", "mean", "var"):
        inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), name))
    _segment(inits[3], 0, 4)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"], name="bn"
        ),
    ]
    return _model(nodes, inits, 13, [1, 3, 8, 8], [1, 4, 8, 8], ir=8)


def test_optimize_keeps_a_batchnorm_whose_mean_is_a_segment() -> None:
    """Was a PassError (fold-batchnorm: 'Currently not supporting loading segments'): the
    segmented mean is no known constant, so the BN is not folded, and the segment is kept."""
    import graphopt

    model = _conv_bn_with_segmented_mean()
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Conv", "BatchNormalization"]
    assert _segments(out) == _segments(model)


def test_a_constant_node_holding_a_segment_is_no_known_constant() -> None:
    """The Constant-node form of a segmented tensor: `Graph.constant` read it through onnx's
    numpy_helper (ValueError 'Currently not supporting loading segments'); it is no known
    constant now, and optimize keeps it (constants-to-initializers then makes it the
    segmented initializer it is), leaving the BN unfolded."""
    import graphopt
    from graphopt.ir import Graph

    model = _conv_bn_with_segmented_mean()
    mean = next(t for t in model.graph.initializer if t.name == "mean")
    model.graph.initializer.remove(mean)
    constant = helper.make_node("Constant", [], ["mean"], name="k", value=mean)
    model.graph.node.insert(0, constant)
    graph = Graph(model)
    assert graph.constant("mean") is None and not graph.is_constant("mean")
    out = graphopt.optimize(model)
    assert "BatchNormalization" in [n.op_type for n in out.graph.node]
    assert _segments(out) == [mean.SerializeToString()]


def test_save_and_load_keep_a_segmented_initializer(tmp_path) -> None:
    """A segmented initializer survives save and load byte for byte, with its weights inline
    and as external data; was a SaveError with external data for one that keeps its values in
    float_data (the external-data writer read it through numpy_helper to move it to raw_data)."""
    from graphopt.ir import load_model, save_model

    model = _conv_bn_with_segmented_mean()
    typed = helper.make_tensor("big", TensorProto.FLOAT, [1, 4, 16, 16], np.ones(1024))
    model.graph.initializer.append(_segment(typed, 0, 1024))
    for external in (False, True):
        path = tmp_path / f"m{int(external)}.onnx"
        save_model(model, path, external_data=external)
        back = load_model(path)
        assert _segments(back) == _segments(model)
        assert back.graph.SerializeToString() == model.graph.SerializeToString()


def test_cse_does_not_merge_segments_with_equal_bytes(tmp_path) -> None:
    """Fails on the parent: y1 = x·k, y2 = x·k2 with k and k2 segments [0, 4) and [4, 8) of
    larger tensors holding equal bytes; CSE merged k2 into k, dropping k2's segment."""
    import graphopt

    k = _segment(numpy_helper.from_array(np.full((1, 4, 1, 1), 0.5, np.float32), "k"), 0, 4)
    k2 = _segment(numpy_helper.from_array(np.full((1, 4, 1, 1), 0.5, np.float32), "k2"), 4, 8)
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "k"], ["y1"], name="m1"),
            helper.make_node("Mul", ["x", "k2"], ["y2"], name="m2"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 4, 8, 8]) for y in ("y1", "y2")],
        [k, k2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    pipeline = tmp_path / "cse.yaml"
    pipeline.write_text("name: cse-only\npasses:\n  - eliminate-common-subexpressions\n")
    out = graphopt.optimize(model, str(pipeline))
    assert [list(n.input) for n in out.graph.node] == [["x", "k"], ["x", "k2"]]
    assert _segments(out) == _segments(model)


def test_quantize_reads_no_segment_as_a_constant() -> None:
    """Fails on the parent with a bare ValueError: the range probe read every one-element
    initializer as a scalar constant, a segmented one too."""
    import graphopt
    from graphopt.backends.onnxruntime import run as ort_run

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    half = _segment(numpy_helper.from_array(np.array(0.5, np.float32), "half"), 0, 1)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "half"], ["m"], name="mul"),
        helper.make_node("Relu", ["m"], ["y"], name="relu"),
    ]
    model = _model(nodes, [w, half], 13, [1, 3, 8, 8], [1, 4, 8, 8], ir=8)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    out = graphopt.quantize(model, feeds, pipeline=False)
    assert _segments(out) == _segments(model)
    assert "QuantizeLinear" in {n.op_type for n in out.graph.node}
    y, want = ort_run(out, feeds[0])["y"], ort_run(model, feeds[0])["y"]
    assert np.abs(y - want).max() < 0.05 * np.abs(want).max()


def test_merge_copies_a_segment_into_each_task() -> None:
    """Fails on the parent with a bare ValueError: merge read every initializer's value to
    share equal ones; a segment's is unknown, so each task keeps its own copy."""
    from graphopt.multitask import merge

    model = _conv_bn_with_segmented_mean()
    out = merge([model, model])
    merged = out[0] if isinstance(out, tuple) else out
    segments = [t for t in merged.graph.initializer if t.HasField("segment")]
    assert len(segments) == 2
    assert {t.raw_data for t in segments} == {model.graph.initializer[3].raw_data}


def test_resize_with_segmented_scales_is_not_read() -> None:
    """Fails on the parent with a bare ValueError: the check of Resize's inferred dims against
    onnxruntime's read its scales through numpy_helper, a segmented initializer too. Now they
    are scales it cannot read, as computed ones: nothing to check, no cut."""
    from graphopt.analysis.runtime_shapes import inference_cuts

    scales = _segment(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s"), 0, 4)
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], name="resize")
    model = _model([node], [scales], 13, [1, 1, 3, 3], [1, 1, 6, 6])
    inferred = onnx.shape_inference.infer_shapes(model)
    assert inference_cuts(model, inferred) == {}


def test_shape_facts_read_no_segment_in_a_body() -> None:
    """Fails on the parent with a bare ValueError: shape inference's guard against huge Slice
    steps read a body's step initializer through numpy_helper, a segmented one too."""
    from graphopt.analysis.shapes import shape_facts

    def const(name: str, values: list[int]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, np.int64), name)

    then = helper.make_graph(
        [helper.make_node("Slice", ["x", "b", "e", "a", "st"], ["t"], name="slice")],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
        [const("b", [0]), const("e", [4]), const("a", [0]), _segment(const("st", [2]), 0, 1)],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["o"], name="same")],
        "else",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
    )
    node = helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other)
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    before = model.SerializeToString()
    facts = shape_facts(model)
    assert facts.shapes.get("y") is None  # [2] or [4], by the branch taken
    assert model.SerializeToString() == before


# ---------------------------------------------------------------------------------------------
# the simplify reviewer's leftovers


def test_removing_a_noop_before_an_output_declares_no_value_info_twice() -> None:
    """r = Relu(x); y = Identity(r), y a graph output, with value_info for r and for y: the
    Relu now writes y, and r's entry was renamed to y beside y's own (two entries, one name)."""
    import graphopt

    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Relu", ["x"], ["r"], name="relu"),
                helper.make_node("Identity", ["r"], ["y"], name="id"),
            ],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
            value_info=[
                helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4]),
                helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
            ],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
        ir_version=8,
    )
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Relu"]
    assert [vi.name for vi in out.graph.value_info] == ["y"]


def test_dead_code_keeps_an_unused_initializer_input_of_an_unset_ir_version() -> None:
    """An IR left unset (0) reads as current everywhere else in graphopt (an initializer that
    is also a graph input is an overridable input: part of the interface); dead-code
    elimination read it as IR < 4 and dropped such an unused input from the graph inputs."""
    from graphopt.pipeline import make_pipeline

    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"], name="relu")],
            "g",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                helper.make_tensor_value_info("unused", TensorProto.FLOAT, [2]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
            [numpy_helper.from_array(np.ones(2, np.float32), "unused")],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 0
    import graphopt

    out = graphopt.optimize(model, make_pipeline("dce", ["eliminate-dead-code"]))
    assert [i.name for i in out.graph.input] == ["x", "unused"]


def test_renaming_an_if_nodes_own_input_adds_no_body_read() -> None:
    """An If reading c as its condition (its body reads only b): replace_all_uses(c, c2) also
    recorded c2 as read by the body, so after the condition moved on to d, the If still counted
    as a reader of c2 (a phantom consumer: c2's producer could never go)."""
    from graphopt.ir import Graph

    body = helper.make_graph(
        [helper.make_node("Identity", ["b"], ["o"], name="inner")],
        "then",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Identity", ["c"], ["c2"], name="copy"),
                helper.make_node("If", ["c"], ["y"], name="if", then_branch=body, else_branch=body),
            ],
            "g",
            [
                helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                helper.make_tensor_value_info("d", TensorProto.BOOL, []),
                helper.make_tensor_value_info("b", TensorProto.FLOAT, [1]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
        ir_version=8,
    )
    graph = Graph(model)
    if_node = graph.nodes["if"]
    graph.set_input(if_node, 0, "c2")  # the If reads c2 directly
    graph.replace_all_uses("c2", "c")  # ... and c again, through the rename
    graph.set_input(if_node, 0, "d")
    assert "if" not in graph.consumers.get("c", {})
    assert "if" in graph.consumers["b"] and "if" in graph.consumers["d"]
