"""A Constant node whose value attribute has another type than its name says (`value_float`
stored as an INT, `value_ints` as a FLOAT: a malformed model): `constant_tensor` read the unset
field for the named type (0.0, an empty list) and the pipeline turned the node into an
initializer holding that, a constant the model does not hold. Such a node is now no known
value: it is kept as it was."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.ir.nodes import constant_tensor


def _model(attribute: onnx.AttributeProto) -> onnx.ModelProto:
    constant = helper.make_node("Constant", [], ["k"], name="k_const")
    constant.attribute.append(attribute)
    graph = helper.make_graph(
        [constant, helper.make_node("Add", ["x", "k"], ["y"], name="add")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


MISTYPED = {
    "value_float as INT": helper.make_attribute("value_float", 2),
    "value_ints as FLOAT": helper.make_attribute("value_ints", 3.0),
    "value_int as FLOATS": helper.make_attribute("value_int", [1.0, 2.0]),
}


@pytest.mark.parametrize("case", sorted(MISTYPED))
def test_mistyped_constant_is_no_value(case: str) -> None:
    model = _model(MISTYPED[case])
    assert constant_tensor(model.graph.node[0]) is None
    out = graphopt.optimize(model)
    kept = [n for n in out.graph.node if n.op_type == "Constant"]
    assert len(kept) == 1 and list(kept[0].attribute) == [MISTYPED[case]]
    assert not out.graph.initializer  # no made-up value


def test_well_typed_constants_still_read() -> None:
    value = constant_tensor(_model(helper.make_attribute("value_float", 2.5)).graph.node[0])
    assert value is not None and onnx.numpy_helper.to_array(value) == 2.5
    ints = constant_tensor(_model(helper.make_attribute("value_ints", [3, 4])).graph.node[0])
    assert ints is not None and onnx.numpy_helper.to_array(ints).tolist() == [3, 4]
