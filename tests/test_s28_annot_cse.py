"""A quantization annotation survives common-subexpression elimination: a merge is
value-preserving, so the annotation of the tensor merged away names its twin, and an
annotation's scale naming an initializer merged away names the one kept. `Graph.commit` dropped
the first as naming nothing (f62eeb4) and left the second naming nothing. A fusion, whose
output holds other values, carries nothing (the control: its scale would be wrong)."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import graphopt
from tests.models_util import run

CSE = "eliminate-common-subexpressions"


def _annotate(graph: onnx.GraphProto, notes: dict[str, dict[str, str]]) -> None:
    for name, parameters in notes.items():
        note = graph.quantization_annotation.add()
        note.tensor_name = name
        for key, value in parameters.items():
            entry = note.quant_parameter_tensor_names.add()
            entry.key, entry.value = key, value


def _scales(names: list[str], equal: bool = False) -> list[onnx.TensorProto]:
    """Scalar scales 0.05, 0.06, ... (all 0.05 where `equal`)."""
    return [
        numpy_helper.from_array(np.array(0.05 + (0 if equal else i / 100), np.float32), n)
        for i, n in enumerate(names)
    ]


def _twins(notes: dict[str, dict[str, str]], output: str = "y") -> onnx.ModelProto:
    """x → Relu → r1, x → Relu → r2 (the same computation twice); r1 → Sigmoid → s,
    r2 → Tanh → t, y = s + t; or, with `output` 'r2', r2 is also a graph output.
    Scale initializers 'r1_s', 'r2_s' and 'y_s' (read by no node)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r1"], name="relu1"),
        helper.make_node("Relu", ["x"], ["r2"], name="relu2"),
        helper.make_node("Sigmoid", ["r1"], ["s"], name="sigmoid"),
        helper.make_node("Tanh", ["r2"], ["t"], name="tanh"),
        helper.make_node("Add", ["s", "t"], ["y"], name="add"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    if output != "y":
        outputs.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 4]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        outputs,
        _scales(["r1_s", "r2_s", "y_s"]),
    )
    _annotate(graph, notes)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _notes(model: onnx.ModelProto) -> list[tuple[str, dict[str, str]]]:
    return [
        (a.tensor_name, {e.key: e.value for e in a.quant_parameter_tensor_names})
        for a in model.graph.quantization_annotation
    ]


def _produced(model: onnx.ModelProto) -> set[str]:
    return {o for n in model.graph.node for o in n.output}


def _initializers(model: onnx.ModelProto) -> set[str]:
    return {t.name for t in model.graph.initializer}


def _same_outputs(original: onnx.ModelProto, optimized: onnx.ModelProto, shape: list[int]) -> None:
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    runs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x}
        )
        for m in (original, optimized)
    ]
    assert len(runs[0]) == len(runs[1])
    for got, want in zip(runs[1], runs[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_merged_nodes_annotation_moves_to_its_twin() -> None:
    model = _twins({"r2": {"SCALE_TENSOR": "r2_s"}, "y": {"SCALE_TENSOR": "y_s"}})
    out = run(model, CSE)
    assert "r2" not in _produced(out) and "r1" in _produced(out)
    assert _notes(out) == [("r1", {"SCALE_TENSOR": "r2_s"}), ("y", {"SCALE_TENSOR": "y_s"})]
    _same_outputs(model, out, [1, 4])
    # the default pipeline (CSE, then dead-code elimination) keeps it, and its scale
    default = graphopt.optimize(model)
    assert ("r1", {"SCALE_TENSOR": "r2_s"}) in _notes(default)
    assert "r2_s" in _initializers(default)
    _same_outputs(model, default, [1, 4])


def test_a_twin_annotated_otherwise_keeps_its_own(caplog) -> None:  # type: ignore[no-untyped-def]
    model = _twins({"r1": {"SCALE_TENSOR": "r1_s"}, "r2": {"SCALE_TENSOR": "r2_s"}})
    with caplog.at_level(logging.DEBUG, logger="graphopt.passes.cse"):
        out = run(model, CSE)
    assert _notes(out) == [("r1", {"SCALE_TENSOR": "r1_s"})]
    assert any("annotation of 'r2' dropped" in r.getMessage() for r in caplog.records)
    # the same annotation twice is one
    same = run(_twins({"r1": {"SCALE_TENSOR": "r1_s"}, "r2": {"SCALE_TENSOR": "r1_s"}}), CSE)
    assert _notes(same) == [("r1", {"SCALE_TENSOR": "r1_s"})]


def test_a_merged_graph_outputs_twin_gives_it_its_annotation() -> None:
    """r2 is a graph output: relu1 is renamed to write 'r2' (the output keeps its name), so
    'r1' goes and its annotation is 'r2''s."""
    model = _twins({"r1": {"SCALE_TENSOR": "r1_s"}}, output="r2")
    out = run(model, CSE)
    assert "r1" not in _produced(out) and "r2" in _produced(out)
    assert [o.name for o in out.graph.output] == ["y", "r2"]
    assert _notes(out) == [("r2", {"SCALE_TENSOR": "r1_s"})]
    _same_outputs(model, out, [1, 4])


def test_a_scale_initializer_merged_away_is_renamed_in_the_annotation() -> None:
    """y = x·a + x·b with equal constants a and b; an annotation's SCALE_TENSOR names b (read
    by a node too), another's names c, equal too and read by no node: CSE merges b and c into
    a, and both annotations name a."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "a"], ["p"], name="mul_a"),
            helper.make_node("Mul", ["x", "b"], ["q"], name="mul_b"),
            helper.make_node("Sub", ["p", "q"], ["d"], name="sub"),
            helper.make_node("Relu", ["x"], ["y"], name="relu"),
            helper.make_node("Add", ["y", "d"], ["z"], name="add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        _scales(["a", "b", "c"], equal=True),
    )
    _annotate(
        graph, {"y": {"SCALE_TENSOR": "b", "ZERO_POINT_TENSOR": "zp"}, "z": {"SCALE_TENSOR": "c"}}
    )
    graph.initializer.append(numpy_helper.from_array(np.array(0, np.uint8), "zp"))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = run(model, CSE)
    assert {"b", "c"}.isdisjoint(_initializers(out)) and "a" in _initializers(out)
    assert _notes(out) == [
        ("y", {"SCALE_TENSOR": "a", "ZERO_POINT_TENSOR": "zp"}),
        ("z", {"SCALE_TENSOR": "a"}),
    ]
    _same_outputs(model, out, [1, 4])


def test_a_fusion_carries_no_annotation_of_other_values() -> None:
    """Control (passes on the parent too): Conv → c → BatchNormalization → y folded into one
    Conv writing y. c's values are not y's, so c's annotation is dropped, not given to y."""
    rng = np.random.default_rng(0)
    channels = 4
    weights = [
        numpy_helper.from_array(rng.standard_normal((channels, 3, 1, 1)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.uniform(0.5, 2, channels).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2, channels).astype(np.float32), "var"),
        *_scales(["c_s"]),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
            helper.make_node(
                "BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], name="bn"
            ),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 4, 4])],
        weights,
    )
    _annotate(graph, {"c": {"SCALE_TENSOR": "c_s"}})
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Conv"]
    assert _notes(out) == []
    _same_outputs(model, out, [1, 3, 4, 4])
