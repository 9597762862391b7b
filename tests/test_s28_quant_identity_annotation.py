"""A quantization annotation of a tensor that eliminate-noops bypasses (an Identity's output)
moves to the tensor that replaces it: `Graph.commit` dropped it as naming nothing (f62eeb4), so
the default pipeline lost an exporter's annotation. Where the replacing tensor is annotated
otherwise, the bypassed one's is dropped (said at debug level): none is made up."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import graphopt


def _model(notes: dict[str, str], output: str = "y") -> onnx.ModelProto:
    """x → Conv → a → Relu → r → Identity → i → Conv → y; or, with `output` 'i', the Identity's
    output is the graph's (and no second Conv). `notes`: tensor → its SCALE_TENSOR."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Identity", ["r"], ["i"], name="identity"),
    ]
    shape = [1, 4, 4, 4]
    if output == "y":
        nodes.append(helper.make_node("Conv", ["i", "w2"], ["y"], name="conv2"))
        shape = [1, 2, 4, 4]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)],
        [w1, w2] if output == "y" else [w1],
    )
    for name, scale in notes.items():
        note = graph.quantization_annotation.add()
        note.tensor_name = name
        entry = note.quant_parameter_tensor_names.add()
        entry.key, entry.value = "SCALE_TENSOR", scale
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _notes(model: onnx.ModelProto) -> list[tuple[str, dict[str, str]]]:
    return [
        (a.tensor_name, {e.key: e.value for e in a.quant_parameter_tensor_names})
        for a in model.graph.quantization_annotation
    ]


def _same_outputs(original: onnx.ModelProto, optimized: onnx.ModelProto) -> None:
    x = np.random.default_rng(1).standard_normal((1, 3, 4, 4)).astype(np.float32)
    run = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x}
        )
        for m in (original, optimized)
    ]
    np.testing.assert_allclose(run[1][0], run[0][0], rtol=1e-4, atol=1e-5)


def _produced(model: onnx.ModelProto) -> set[str]:
    return {o for n in model.graph.node for o in n.output}


def test_an_identity_outputs_annotation_moves_to_its_input() -> None:
    model = _model({"a": "a_scale", "i": "i_scale", "y": "y_scale"})
    out = graphopt.optimize(model)
    assert "i" not in _produced(out) and "r" in _produced(out)
    assert _notes(out) == [
        ("a", {"SCALE_TENSOR": "a_scale"}),
        ("r", {"SCALE_TENSOR": "i_scale"}),
        ("y", {"SCALE_TENSOR": "y_scale"}),
    ]
    _same_outputs(model, out)


def test_a_graph_outputs_producer_renamed_gives_the_output_its_inputs_annotation() -> None:
    """Identity(r) → graph output i: Relu is renamed to write 'i' (the output keeps its name),
    so 'r' goes and its annotation is 'i''s."""
    model = _model({"r": "r_scale"}, output="i")
    out = graphopt.optimize(model)
    assert [o.name for o in out.graph.output] == ["i"]
    assert "r" not in _produced(out) and "i" in _produced(out)
    assert _notes(out) == [("i", {"SCALE_TENSOR": "r_scale"})]
    _same_outputs(model, out)


def test_a_scale_tensor_named_by_the_bypassed_name_is_renamed() -> None:
    """An annotation's parameter naming the bypassed tensor names the one that replaces it."""
    model = _model({"y": "i"})
    out = graphopt.optimize(model)
    assert _notes(out) == [("y", {"SCALE_TENSOR": "r"})]


def test_an_input_annotated_otherwise_keeps_its_own(caplog) -> None:  # type: ignore[no-untyped-def]
    model = _model({"r": "r_scale", "i": "i_scale"})
    with caplog.at_level(logging.DEBUG, logger="graphopt.passes.noop"):
        out = graphopt.optimize(model)
    assert _notes(out) == [("r", {"SCALE_TENSOR": "r_scale"})]
    assert any("annotation of 'i' dropped" in r.getMessage() for r in caplog.records)
    same = graphopt.optimize(_model({"r": "s", "i": "s"}))
    assert _notes(same) == [("r", {"SCALE_TENSOR": "s"})]
    # a graph output annotated otherwise keeps its own too
    output = graphopt.optimize(_model({"r": "r_scale", "i": "i_scale"}, output="i"))
    assert _notes(output) == [("i", {"SCALE_TENSOR": "i_scale"})]


def test_no_pass_moves_nothing() -> None:
    model = _model({"i": "i_scale"})
    assert _notes(graphopt.optimize(model, opt_level=-1)) == [("i", {"SCALE_TENSOR": "i_scale"})]


def test_merge_transposes_bypass_carries_it_too() -> None:
    """Transpose(Transpose(r, p), p⁻¹) = r (merge-transposes bypasses through the same `bypass`)."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Transpose", ["r"], ["t"], name="t1", perm=[0, 2, 3, 1]),
            helper.make_node("Transpose", ["t"], ["u"], name="t2", perm=[0, 3, 1, 2]),
            helper.make_node("Sigmoid", ["u"], ["y"], name="sigmoid"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    note = graph.quantization_annotation.add()
    note.tensor_name = "u"
    entry = note.quant_parameter_tensor_names.add()
    entry.key, entry.value = "SCALE_TENSOR", "u_scale"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Relu", "Sigmoid"]
    assert _notes(out) == [("r", {"SCALE_TENSOR": "u_scale"})]
    _same_outputs(model, out)
