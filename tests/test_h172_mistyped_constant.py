"""A Constant node whose attribute has another type than its name says (`value_ints` given as
FLOATS, `value_floats` as a TENSOR: onnx.checker refuses it, onnxruntime runs it in the main
graph reading the attribute by its type). graphopt knows no value for it (`mistyped_constant`,
cb8d0d8), but two places still read it by its name:

- ONNX shape inference over the shape facts' light model: `value_ints` given as three floats
  is an empty vector there, so `Shape(k)` folded to [0] where onnxruntime computes [3];
- `ort-nchwc-layout` with its fallback copied the node into the If branches of its guard,
  where onnxruntime refuses it ("Mismatched attribute type"): the model no longer loaded.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.api import optimize_with_report
from graphopt.passes.ort_nchwc import measured_block_size
from tests.fusion_models import explained, run_at

THREE = np.array([1.0, 2.0, 3.0], np.float32)
MISTYPED = {
    "value_floats as TENSOR": helper.make_attribute("value_floats", numpy_helper.from_array(THREE)),
    "value_ints as FLOATS": helper.make_attribute("value_ints", THREE.tolist()),
    "value as FLOATS": helper.make_attribute("value", THREE.tolist()),
    "value_floats as FLOAT": helper.make_attribute("value_floats", 2.0),
}


def _shape_model(attribute: onnx.AttributeProto) -> onnx.ModelProto:
    """y = x + Cast(Shape(k)), k a Constant node with `attribute`."""
    constant = helper.make_node("Constant", [], ["k"], name="k_const")
    constant.attribute.append(attribute)
    graph = helper.make_graph(
        [
            constant,
            helper.make_node("Shape", ["k"], ["s"], name="shape"),
            helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT, name="cast"),
            helper.make_node("Add", ["x", "sf"], ["y"], name="add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize("case", sorted(MISTYPED))
@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
def test_shape_of_a_mistyped_constant_is_not_folded(case: str, pipeline: str) -> None:
    model = _shape_model(MISTYPED[case])
    with pytest.raises(onnx.checker.ValidationError, match="Mismatched attribute type"):
        onnx.checker.check_model(model, full_check=True)
    x = {"x": np.array([0.5], np.float32)}
    expected = run_at(model, x, level="disable")["y"]  # onnxruntime: Shape of what it reads
    out = graphopt.optimize(model, pipeline=pipeline)
    assert "Shape" in [n.op_type for n in out.graph.node]
    np.testing.assert_array_equal(run_at(out, x, level="disable")["y"], expected)


def test_well_typed_constant_shape_still_folds() -> None:
    model = _shape_model(helper.make_attribute("value_floats", THREE.tolist()))
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Add"]
    np.testing.assert_array_equal(run_at(out, {"x": np.zeros(1, np.float32)})["y"], [3.0])


def _conv_model(attribute: onnx.AttributeProto) -> onnx.ModelProto:
    """y = Conv(x, W) + k, k a Constant node with `attribute`."""
    constant = helper.make_node("Constant", [], ["k"], name="k_const")
    constant.attribute.append(attribute)
    weight = np.random.default_rng(0).uniform(-1, 1, (16, 8, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            constant,
            helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Add", ["c", "k"], ["y"], name="add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 6, 6])],
        [numpy_helper.from_array(weight, "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.skipif(measured_block_size()[0] == 0, reason="no NCHWc kernels on this CPU")
@pytest.mark.parametrize(
    "attribute",
    [
        helper.make_attribute("value_int", 2.0),
        helper.make_attribute("value_ints", [2.0]),
        helper.make_attribute("value", 2.0),
    ],
    ids=["value_int as FLOAT", "value_ints as FLOATS", "value as FLOAT"],
)
def test_nchwc_fallback_keeps_a_mistyped_constant_out_of_branches(
    attribute: onnx.AttributeProto,
) -> None:
    model = _conv_model(attribute)
    x = {"x": np.random.default_rng(1).uniform(-1, 1, (1, 8, 6, 6)).astype(np.float32)}
    expected = run_at(model, x, level="disable")["y"]
    out, report = optimize_with_report(model, "ort-cpu", explain=True)
    assert "If" not in [n.op_type for n in out.graph.node]
    assert any("If branches" in r for r in explained(report, "ort-nchwc-layout", "refused"))
    np.testing.assert_allclose(run_at(out, x, level="disable")["y"], expected, rtol=1e-5)
