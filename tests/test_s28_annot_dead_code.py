"""Dead-code elimination keeps the constants a quantization annotation names as its scale or
zero point (`quant_parameter_tensor_names`): no node reads them, so they were removed as
unused and the annotation named nothing (onnx.checker and onnxruntime accept both; the scale
was lost). An annotation of a tensor that goes keeps nothing (the controls)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import graphopt
from tests.models_util import run

DCE = "eliminate-dead-code"


def _model(notes: dict[str, dict[str, str]], constant_nodes: bool = False) -> onnx.ModelProto:
    """x → Relu → r → Sigmoid → y, and a dead branch x → Tanh → dead. Scales y_s (0.1),
    r_s (0.2), dead_s (0.3) and zero point y_zp, read by no node: initializers, or
    `Constant` nodes where `constant_nodes`."""
    values = {
        "y_s": np.array(0.1, np.float32),
        "r_s": np.array(0.2, np.float32),
        "dead_s": np.array(0.3, np.float32),
        "y_zp": np.array(3, np.uint8),
    }
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["r"], ["y"], name="sigmoid"),
        helper.make_node("Tanh", ["x"], ["dead"], name="tanh"),
    ]
    initializers = []
    for name, value in values.items():
        tensor = numpy_helper.from_array(value, name)
        if constant_nodes:
            nodes.insert(
                0, helper.make_node("Constant", [], [name], name=f"{name}_c", value=tensor)
            )
        else:
            initializers.append(tensor)
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializers,
    )
    for name, parameters in notes.items():
        note = graph.quantization_annotation.add()
        note.tensor_name = name
        for key, value in parameters.items():
            entry = note.quant_parameter_tensor_names.add()
            entry.key, entry.value = key, value
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _notes(model: onnx.ModelProto) -> list[tuple[str, dict[str, str]]]:
    return [
        (a.tensor_name, {e.key: e.value for e in a.quant_parameter_tensor_names})
        for a in model.graph.quantization_annotation
    ]


def _constants(model: onnx.ModelProto) -> dict[str, float]:
    """Every initializer's and Constant node's value (scalars here), by name."""
    found = {t.name: numpy_helper.to_array(t).item() for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).item()
    return found


def _same_outputs(original: onnx.ModelProto, optimized: onnx.ModelProto) -> None:
    x = np.random.default_rng(1).standard_normal((1, 4)).astype(np.float32)
    runs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x}
        )
        for m in (original, optimized)
    ]
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-4, atol=1e-5)


NOTES = {
    "y": {"SCALE_TENSOR": "y_s", "ZERO_POINT_TENSOR": "y_zp"},
    "r": {"SCALE_TENSOR": "r_s"},
}


def test_the_scales_an_annotation_names_are_kept() -> None:
    model = _model(NOTES)
    out = run(model, DCE)
    assert _notes(out) == list(NOTES.items())
    assert _constants(out) == {"y_s": np.float32(0.1), "r_s": np.float32(0.2), "y_zp": 3}
    assert [n.op_type for n in out.graph.node] == ["Relu", "Sigmoid"]  # the dead branch went
    _same_outputs(model, out)
    # and through the default pipeline
    default = graphopt.optimize(model)
    onnx.checker.check_model(default, full_check=True)
    assert _notes(default) == list(NOTES.items())
    assert _constants(default) == _constants(out)
    _same_outputs(model, default)


def test_constant_nodes_an_annotation_names_are_kept() -> None:
    """Without constants-to-initializers first, the scales are Constant nodes: kept too."""
    model = _model(NOTES, constant_nodes=True)
    out = run(model, DCE)
    assert _notes(out) == list(NOTES.items())
    assert _constants(out) == {"y_s": np.float32(0.1), "r_s": np.float32(0.2), "y_zp": 3}
    assert sorted(n.op_type for n in out.graph.node) == [
        "Constant",
        "Constant",
        "Constant",
        "Relu",
        "Sigmoid",
    ]
    _same_outputs(model, out)


def test_an_annotation_of_a_dead_tensor_keeps_nothing() -> None:
    """The dead branch's annotation goes with it, and its scale with it (the parent did that
    too), while the live annotation's scale stays; an unannotated unread one goes."""
    model = _model({"dead": {"SCALE_TENSOR": "dead_s"}, "y": {"SCALE_TENSOR": "y_s"}})
    out = run(model, DCE)
    assert _notes(out) == [("y", {"SCALE_TENSOR": "y_s"})]
    assert _constants(out) == {"y_s": np.float32(0.1)}
    _same_outputs(model, out)
