"""constant-folding and eliminate-noops still rewrite a node carrying an attribute named `__…`
(H217). onnx's OpSchema::Verify, which onnx.checker and onnxruntime run, takes any attribute
whose name starts with two underscores (an internal symbol) on any op; `schema_mismatch`
(8ea8c03) refused it as an attribute the schema does not have, so a valid model lost the fold
of Neg(c) and the bypass of Identity it had before. A misspelt attribute (no underscores) is
still refused: onnxruntime refuses that node."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper as onh
import onnxruntime as ort
import pytest

import graphopt

FEEDS = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}


def _model(attribute: str) -> onnx.ModelProto:
    c = onh.from_array(np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5, "c")
    neg = oh.make_node("Neg", ["c"], ["n"], name="neg")
    neg.attribute.append(oh.make_attribute(attribute, 1))
    ident = oh.make_node("Identity", ["x"], ["i"], name="ident")
    ident.attribute.append(oh.make_attribute(attribute, "tag"))
    graph = oh.make_graph(
        [neg, ident, oh.make_node("Add", ["i", "n"], ["y"], name="add")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])],
        [c],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)


def _run(model: onnx.ModelProto) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, FEEDS)[0]


@pytest.mark.parametrize("pipeline", ["default", "simplify"])
def test_an_internal_attribute_leaves_the_fold_and_the_bypass(pipeline: str) -> None:
    model = _model("__origin")
    onnx.checker.check_model(model, full_check=True)  # valid: onnx and onnxruntime take it
    want = _run(model)
    out = graphopt.optimize(model, pipeline)
    assert [n.op_type for n in out.graph.node] == ["Add"]  # Neg folded, Identity bypassed
    np.testing.assert_array_equal(_run(out), want)


def test_a_misspelt_attribute_is_still_refused() -> None:
    model = _model("origin")
    with pytest.raises(Exception, match="Unrecognized attribute"):
        _run(model)  # onnxruntime refuses it: the nodes stay as they are
    out = graphopt.optimize(model, "default")
    assert sorted(n.op_type for n in out.graph.node) == ["Add", "Identity", "Neg"]
