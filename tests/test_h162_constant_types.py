"""A Constant node whose attribute has another type than its name says (`value` given as a
FLOAT, `value_int` as a FLOAT, two value attributes: a malformed node onnx.checker refuses with
"Mismatched attribute type"). onnxruntime loads and runs such a node, reading the attribute by
its type (`value_int` given as 1.0 is the float 1.0). `Graph.constant` read it by its name: the
unset field for that name (0, an empty list, an untyped tensor), so eliminate-noops failed with
a PassError ("The element type in the input tensor is UNDEFINED") and constant-folding folded
`Cast(Constant)` into a value the model does not hold (x * 1 became x * 0). Such a node is now
no known constant: it is kept, and what reads it is not folded."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.ir import Graph
from graphopt.pipeline import make_pipeline
from tests.fusion_models import run_at

X = np.array([1.5, -2.0], np.float32)


def _model(attributes: list[onnx.AttributeProto], op: str = "Add") -> onnx.ModelProto:
    """y = x <op> Cast(k, float), k a Constant node with `attributes`."""
    constant = helper.make_node("Constant", [], ["k"], name="k_const")
    constant.attribute.extend(attributes)
    graph = helper.make_graph(
        [
            constant,
            helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT, name="cast"),
            helper.make_node(op, ["x", "kf"], ["y"], name="op"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


MALFORMED = {
    "value as FLOAT": [helper.make_attribute("value", 2.0)],
    "value_int as FLOAT": [helper.make_attribute("value_int", 1.0)],
    "value_float as INT": [helper.make_attribute("value_float", 2)],
    "value_int as FLOATS": [helper.make_attribute("value_int", [1.0, 2.0])],
    "value_float as INTS": [helper.make_attribute("value_float", [1, 2])],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("op", ["Add", "Mul"])
@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
def test_malformed_constant_keeps_outputs(case: str, op: str, pipeline: str) -> None:
    model = _model(MALFORMED[case], op)
    with pytest.raises(onnx.checker.ValidationError, match="Mismatched attribute type"):
        onnx.checker.check_model(model, full_check=True)
    expected = run_at(model, {"x": X}, level="disable")["y"]  # onnxruntime runs it
    out = graphopt.optimize(model, pipeline=pipeline)
    kept = [n for n in out.graph.node if n.op_type == "Constant"]
    assert len(kept) == 1 and list(kept[0].attribute) == MALFORMED[case]
    np.testing.assert_array_equal(run_at(out, {"x": X}, level="disable")["y"], expected)


@pytest.mark.parametrize(
    "attributes",
    [
        *MALFORMED.values(),
        [helper.make_attribute("value_float", 2.0), helper.make_attribute("value_int", 3)],
        [onnx.AttributeProto(name="value", type=onnx.AttributeProto.TENSOR)],
        [],
    ],
    ids=[*MALFORMED, "two values", "untyped tensor", "no value"],
)
def test_malformed_constant_is_no_constant(attributes: list[onnx.AttributeProto]) -> None:
    graph = Graph(_model(attributes))
    assert graph.constant("k") is None
    assert not graph.is_constant("k")


def test_direct_passes_keep_the_value() -> None:
    """eliminate-noops alone (no constants-to-initializers first) read `value` given as a
    FLOAT as an untyped tensor: a PassError."""
    model = _model(MALFORMED["value as FLOAT"])
    for passes in (["eliminate-noops"], ["constant-folding"]):
        out = graphopt.optimize(model, make_pipeline("t", passes))
        np.testing.assert_array_equal(
            run_at(out, {"x": X}, level="disable")["y"],
            run_at(model, {"x": X}, level="disable")["y"],
        )


def test_well_formed_constants_still_fold() -> None:
    for attribute, value in (
        (helper.make_attribute("value_int", 3), 3.0),
        (helper.make_attribute("value_float", 2.5), 2.5),
        (helper.make_attribute("value", onnx.numpy_helper.from_array(np.float32(4.0))), 4.0),
    ):
        graph = Graph(_model([attribute]))
        assert graph.is_constant("k") and float(graph.constant("k")) == value
        out = graphopt.optimize(_model([attribute]))
        assert [n.op_type for n in out.graph.node] == ["Add"]
        np.testing.assert_allclose(run_at(out, {"x": X}, level="disable")["y"], X + value)
