"""merge-concats on a Concat whose `axis` attribute is a FLOAT (axis=0.0): a model onnxruntime
refuses to load, which optimize must leave alone, not fail on (H211 found the pass raised
"TypeError: list indices must be integers or slices, not float")."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

import graphopt
from graphopt.ir import Graph
from graphopt.passes.layout import MergeConcats
from graphopt.pipeline import PassContext


def _float_axis_model(outer_axis: object, inner_axis: object) -> onnx.ModelProto:
    def concat(inputs: list[str], out: str, axis: object) -> onnx.NodeProto:
        node = helper.make_node("Concat", inputs, [out])
        node.attribute.append(helper.make_attribute("axis", axis))
        return node

    c = helper.make_tensor("c", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    nodes = [
        concat(["x", "x"], "inner", inner_axis),
        concat(["inner", "x"], "r", outer_axis),
        helper.make_node("Add", ["r", "c9"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [c, helper.make_tensor("c9", TensorProto.FLOAT, [9], [0.0] * 9)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _concats_left(model: onnx.ModelProto) -> int:
    graph = Graph(model)
    MergeConcats().run(graph, PassContext())
    return sum(1 for n in graph.nodes.values() if n.op_type == "Concat")


def test_a_float_outer_axis_is_left_alone():
    count = _concats_left(_float_axis_model(0.0, 0))
    assert count == 2


def test_a_float_inner_axis_is_left_alone():
    count = _concats_left(_float_axis_model(0, 0.0))
    assert count == 2


def test_int_axes_still_merge():
    count = _concats_left(_float_axis_model(0, 0))
    assert count == 1


def test_optimize_of_the_float_axis_model_does_not_fail():
    out = graphopt.optimize(_float_axis_model(0.0, 0.0))
    assert sum(n.op_type == "Concat" for n in out.graph.node) == 2
