"""fp16_model: a FlexAttention with a score_mod graph inside an If branch stays float32 too
(H223, the neighbouring form of aadd405, which looked at the main graph only). The converter
made its Q, K and V float16 but left score_mod's input float32: an invalid model ('Attribute
score_mod input(0) type mismatch. Expected 1, got 10'), as aadd405 found in the main graph.
Built from onnx's test_flexattention_score_mod node case, its graph put in an If branch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx.backend.test.case.node import collect_testcases
from onnx.reference import ReferenceEvaluator

from graphopt.backends.tensorrt import fp16_model


def _case() -> tuple[onnx.ModelProto, list[np.ndarray]]:
    case = next(
        (c for c in collect_testcases(None) if c.name == "test_flexattention_score_mod"), None
    )
    if case is None:
        pytest.skip("this onnx has no FlexAttention node case")
    return case.model, list(case.data_sets[0][0])


def _in_if_branch(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    out = onnx.ValueInfoProto()
    out.CopyFrom(g.output[0])
    out.name = "out"
    other = onnx.ValueInfoProto()
    other.CopyFrom(g.output[0])
    other.name = "other"
    then = h.make_graph(list(g.node), "then", [], list(g.output))
    otherwise = h.make_graph(
        [h.make_node("Identity", [g.input[0].name], ["other"])], "e", [], [other]
    )
    node = h.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=otherwise)
    cond = h.make_tensor_value_info("cond", T.BOOL, [])
    graph = h.make_graph([node], "main", [*g.input, cond], [out])
    wrapped = h.make_model(graph, opset_imports=list(model.opset_import))
    wrapped.ir_version = model.ir_version
    onnx.checker.check_model(wrapped, full_check=True)
    return wrapped


@pytest.mark.slow
def test_flex_attention_with_score_mod_in_a_branch_stays_float32() -> None:
    model, inputs = _case()
    wrapped = _in_if_branch(model)
    half = fp16_model(wrapped)
    onnx.checker.check_model(half, full_check=True)  # (invalid on the parent)
    feeds = {v.name: a for v, a in zip(model.graph.input, inputs, strict=True)}
    feeds["cond"] = np.array(True)
    want = ReferenceEvaluator(wrapped).run(None, feeds)[0]
    got = ReferenceEvaluator(half).run(None, feeds)[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3)  # (inputs rounded)


def test_flex_attention_with_score_mod_in_the_main_graph_stays_float32() -> None:
    # aadd405's case: the same, unwrapped (passes on both)
    model, _ = _case()
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    assert not any(n.op_type == "Cast" for n in half.graph.node)
