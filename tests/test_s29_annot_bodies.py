"""Quantization annotations held by an If/Loop/Scan body (its GraphProto's own
`quantization_annotation`) that name outer-scope tensors: the annotated tensor (an outer one
the body reads) or its scale and zero point (outer constants, read by no node). Passes over
the outer graph renamed the body's reads (an Identity bypassed, twin constants merged) but not
its annotations, and eliminate-dead-code dropped the outer scales, which no node reads: the
body's annotation named nothing. Now a body's annotation naming an outer constant counts as a
read of it by the body's node (kept, merged, renamed), and a rename into a body of tensors
holding the same values carries the body's annotations as the outer graph's are carried."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from tests.models_util import run

F = TensorProto.FLOAT


def _vi(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, F, [1, 4])


def _annotate(graph: onnx.GraphProto, notes: dict[str, dict[str, str]]) -> None:
    for name, parameters in notes.items():
        note = graph.quantization_annotation.add()
        note.tensor_name = name
        for key, value in parameters.items():
            entry = note.quant_parameter_tensor_names.add()
            entry.key, entry.value = key, value


def _model(then_notes: dict[str, dict[str, str]], twin: bool = False) -> onnx.ModelProto:
    """a = Identity(x); y = If(c, then: t = Relu(a), else: e = Sigmoid(a)); scale s = 0.1 and
    zero point zp are main-graph initializers no node reads; the then-branch holds
    `then_notes`. `twin`: s0 = 0.1, s's twin, read by m = x · s0 (a second output)."""
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(3, np.uint8), "zp"),
    ]
    nodes = [helper.make_node("Identity", ["x"], ["a"], name="id")]
    outputs = [_vi("y")]
    if twin:
        inits.append(numpy_helper.from_array(np.array(0.1, np.float32), "s0"))
        nodes.append(helper.make_node("Mul", ["x", "s0"], ["m"], name="mul"))
        outputs.append(_vi("m"))
    then_branch = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["t"], name="relu")], "then", [], [_vi("t")]
    )
    _annotate(then_branch, then_notes)
    else_branch = helper.make_graph(
        [helper.make_node("Sigmoid", ["a"], ["e"], name="sigmoid")], "else", [], [_vi("e")]
    )
    nodes.append(
        helper.make_node(
            "If", ["c"], ["y"], name="if", then_branch=then_branch, else_branch=else_branch
        )
    )
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    graph = helper.make_graph(nodes, "g", [_vi("x"), cond], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _then_branch(model: onnx.ModelProto) -> onnx.GraphProto:
    (node,) = [n for n in model.graph.node if n.op_type == "If"]
    return next(a.g for a in node.attribute if a.name == "then_branch")


def _notes(graph: onnx.GraphProto) -> list[tuple[str, dict[str, str]]]:
    return [
        (a.tensor_name, {e.key: e.value for e in a.quant_parameter_tensor_names})
        for a in graph.quantization_annotation
    ]


def _in_scope(model: onnx.ModelProto, body: onnx.GraphProto) -> set[str]:
    """The names the then-branch sees: its own and the main graph's."""
    names: set[str] = set()
    for g in (model.graph, body):
        names |= {t.name for t in g.initializer} | {i.name for i in g.input}
        names |= {o for n in g.node for o in n.output}
    return names


def _values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _same_outputs(original: onnx.ModelProto, out: onnx.ModelProto) -> None:
    x = np.random.default_rng(4).standard_normal((1, 4)).astype(np.float32)
    for c in (True, False):
        feeds = {"x": x, "c": np.array(c)}
        want, got = (
            ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
                None, feeds
            )
            for m in (original, out)
        )
        for w, g in zip(want, got, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def _names_exist(model: onnx.ModelProto, out: onnx.ModelProto) -> list[tuple[str, dict]]:
    """The then-branch's annotations of `out`, after checking that each name they give is in
    scope there and each scale or zero point holds the value it held in `model`."""
    onnx.checker.check_model(out, full_check=True)
    body = _then_branch(out)
    seen, before, after = _in_scope(out, body), _values(model), _values(out)
    notes = _notes(body)
    for tensor, parameters in notes:
        assert tensor in seen, f"the body's annotation names {tensor!r}: gone"
        for key, name in parameters.items():
            assert name in after, f"the body's annotation's {key} names {name!r}: gone"
            original = {"SCALE_TENSOR": "s", "ZERO_POINT_TENSOR": "zp"}[key]
            np.testing.assert_array_equal(after[name], before[original])
    _same_outputs(model, out)
    return notes


NOTE = {"SCALE_TENSOR": "s", "ZERO_POINT_TENSOR": "zp"}


@pytest.mark.parametrize("passes", [["eliminate-dead-code"], None])
def test_dead_code_keeps_the_outer_scales_a_body_annotation_names(passes: list[str] | None) -> None:
    model = _model({"t": NOTE})
    out = run(model, *passes) if passes else graphopt.optimize(model)
    assert _names_exist(model, out) == [("t", NOTE)]


def test_a_body_annotation_follows_the_outer_twin_cse_keeps() -> None:
    """s and s0 are twins: one goes, and the body's annotation names the one kept."""
    model = _model({"t": NOTE}, twin=True)
    for out in (run(model, "eliminate-common-subexpressions"), graphopt.optimize(model)):
        ((tensor, parameters),) = _names_exist(model, out)
        assert tensor == "t"
        (kept,) = {t.name for t in out.graph.initializer} & {"s", "s0"}
        assert parameters == {"SCALE_TENSOR": kept, "ZERO_POINT_TENSOR": "zp"}


def test_a_body_annotation_of_a_bypassed_outer_tensor_names_its_input() -> None:
    """The body annotates the outer a = Identity(x) it reads; with the Identity bypassed the
    body reads x, and so does its annotation."""
    model = _model({"a": NOTE})
    for out in (run(model, "eliminate-noops"), graphopt.optimize(model)):
        assert "Identity" not in [n.op_type for n in out.graph.node]
        assert _names_exist(model, out) == [("x", NOTE)]
