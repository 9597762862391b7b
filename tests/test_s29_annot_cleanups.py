"""The clean-ups a rewrite makes of the constants it no longer reads keep those a quantization
annotation names (`quant_parameter_tensor_names`: SCALE_TENSOR, ZERO_POINT_TENSOR), as
eliminate-dead-code does: fold-batchnorm's pattern rewrite (`patterns/rewrite.py`) dropped a
scale a folded Mul also read (its own, or its twin's after CSE merged them) and overwrote one
in place with a folded bias; `ort-nchwc-layout` dropped a bias the annotation named. The
annotation then named nothing, or a tensor holding other values. A weight the fold changes is
no longer overwritten under the name its annotation gives: the annotation goes with it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN, measured_block_size
from tests.models_util import run

BLOCK, WHY = measured_block_size()
needs_nchwc = pytest.mark.skipif(BLOCK == 0, reason=f"no NCHWc kernels here: {WHY}")


def _annotate(graph: onnx.GraphProto, notes: dict[str, dict[str, str]]) -> None:
    for name, parameters in notes.items():
        note = graph.quantization_annotation.add()
        note.tensor_name = name
        for key, value in parameters.items():
            entry = note.quant_parameter_tensor_names.add()
            entry.key, entry.value = key, value


def _model(
    nodes: list[onnx.NodeProto],
    values: dict[str, np.ndarray],
    x_shape: list[int],
    y_shape: list[int],
    notes: dict[str, dict[str, str]],
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(v, k) for k, v in values.items()],
    )
    _annotate(graph, notes)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv_mul(scale_name: str) -> onnx.ModelProto:
    """y = Relu(Conv(x, W, B) · k), k = 0.5; y annotated with scale `scale_name` (k itself,
    or y_s, k's twin) and zero point y_zp."""
    rng = np.random.default_rng(0)
    values = {
        "W": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "B": rng.standard_normal(4).astype(np.float32),
        "k": np.array(0.5, np.float32),
        "y_zp": np.array(3, np.uint8),
    }
    if scale_name != "k":
        values[scale_name] = np.array(0.5, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "k"], ["m"], name="mul"),
        helper.make_node("Relu", ["m"], ["y"], name="relu"),
    ]
    notes = {"y": {"SCALE_TENSOR": scale_name, "ZERO_POINT_TENSOR": "y_zp"}}
    return _model(nodes, values, [1, 3, 8, 8], [1, 4, 8, 8], notes)


def _conv_bn(notes: dict[str, dict[str, str]]) -> onnx.ModelProto:
    """y = Relu(BN(Conv(x, W))), and a per-channel scale W_s and zero point zp."""
    rng = np.random.default_rng(1)
    values = {
        "W": rng.standard_normal((4, 3, 3, 3)),
        "gamma": rng.uniform(0.5, 2, 4),
        "beta": rng.standard_normal(4),
        "mean": rng.standard_normal(4),
        "var": rng.uniform(0.5, 2, 4),
        "W_s": np.full(4, 0.01),
    }
    arrays = {k: v.astype(np.float32) for k, v in values.items()}
    arrays["zp"] = np.zeros(4, np.int8)
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["b"], name="bn"
        ),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    return _model(nodes, arrays, [1, 3, 8, 8], [1, 4, 8, 8], notes)


def _notes(model: onnx.ModelProto) -> list[tuple[str, dict[str, str]]]:
    return [
        (a.tensor_name, {e.key: e.value for e in a.quant_parameter_tensor_names})
        for a in model.graph.quantization_annotation
    ]


def _values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _defined(model: onnx.ModelProto) -> set[str]:
    g = model.graph
    names = {t.name for t in g.initializer} | {i.name for i in g.input}
    return names | {o for n in g.node for o in n.output}


def _annotations_hold(original: onnx.ModelProto, out: onnx.ModelProto) -> None:
    """Every name an annotation of `out` gives is a tensor of `out`, and every annotated or
    parameter constant holds the values it held in `original`."""
    before, after = _values(original), _values(out)
    for tensor, parameters in _notes(out):
        for name in (tensor, *parameters.values()):
            assert name in _defined(out), f"annotation of {tensor!r} names {name!r}: gone"
            if name in after:
                np.testing.assert_array_equal(after[name], before[name])


def _same_outputs(original: onnx.ModelProto, out: onnx.ModelProto) -> None:
    shape = [d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    want, got = (
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x}
        )[0]
        for m in (original, out)
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu"])
def test_a_scale_a_folded_mul_also_read_is_kept(pipeline: str) -> None:
    """k is both the Mul's operand, folded into the Conv, and y's SCALE_TENSOR."""
    model = _conv_mul("k")
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    assert "Mul" not in [n.op_type for n in out.graph.node]  # (folded, or inside the If)
    assert _notes(out) == [("y", {"SCALE_TENSOR": "k", "ZERO_POINT_TENSOR": "y_zp"})]
    assert _values(out)["k"] == np.float32(0.5)
    _annotations_hold(model, out)
    _same_outputs(model, out)


def test_a_scale_cse_merged_into_the_folded_constant_is_kept() -> None:
    """y_s, k's twin, is merged into k by CSE (the annotation renamed), then the fold read k
    for the last time: the default pipeline dropped it, the annotation naming nothing."""
    model = _conv_mul("y_s")
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
    ((tensor, parameters),) = _notes(out)
    assert tensor == "y"
    assert _values(out)[parameters["SCALE_TENSOR"]] == np.float32(0.5)
    assert _values(out)[parameters["ZERO_POINT_TENSOR"]] == 3
    _same_outputs(model, out)


def test_the_fold_writes_no_bias_over_an_annotated_scale() -> None:
    """Conv+BN's folded bias took a spare [C] tensor's storage: `var`, which y's annotation
    names as its scale, came out holding the bias."""
    notes = {"y": {"SCALE_TENSOR": "var", "ZERO_POINT_TENSOR": "zp"}}
    model = _conv_bn(notes)
    for out in (run(model, "fold-batchnorm"), graphopt.optimize(model)):
        assert [n.op_type for n in out.graph.node] == ["Conv", "Relu"]
        assert _notes(out) == list(notes.items())
        _annotations_hold(model, out)
        _same_outputs(model, out)


def test_an_annotated_weight_the_fold_changes_keeps_no_annotation() -> None:
    """W, annotated with W_s, was overwritten in place with W·s: its annotation then described
    other values. Now W·s is a new weight, and W goes with its annotation (as a fusion's
    output gets none)."""
    model = _conv_bn({"W": {"SCALE_TENSOR": "W_s", "ZERO_POINT_TENSOR": "zp"}})
    for out in (run(model, "fold-batchnorm"), graphopt.optimize(model)):
        assert [n.op_type for n in out.graph.node] == ["Conv", "Relu"]
        assert _notes(out) == []
        assert "W" not in _values(out)
        _annotations_hold(model, out)
        _same_outputs(model, out)


@needs_nchwc
def test_nchwc_keeps_a_bias_an_annotation_names() -> None:
    """The Conv's bias B (4 channels, padded to the block size: a copy) is y's scale; the
    pass dropped B as read by nothing."""
    rng = np.random.default_rng(3)
    values = {
        "W": rng.standard_normal((4, 8, 3, 3)).astype(np.float32),
        "B": np.full(4, 0.25, np.float32),
        "y_zp": np.zeros(4, np.uint8),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    notes = {"y": {"SCALE_TENSOR": "B", "ZERO_POINT_TENSOR": "y_zp"}}
    model = _model(nodes, values, [1, 8, 8, 8], [1, 4, 8, 8], notes)
    out = run(model, "ort-nchwc-layout")
    assert any(n.domain == NCHWC_DOMAIN and n.op_type == "Conv" for n in out.graph.node)
    assert _notes(out) == list(notes.items())
    _annotations_hold(model, out)
    _same_outputs(model, out)
