"""Adversarial review of the FuseOps partition: what `fusion_groups` reports of each group."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import fusion_groups
from graphopt.analysis.op_kinds import OpKind, op_kind
from graphopt.commands.inspect import inspect_model
from graphopt.ir import Graph


def _reshape_sigmoid_model() -> onnx.ModelProto:
    """x → Reshape → Sigmoid → Reshape → Tanh: phase 2 fuses the Reshapes into elementwise
    sinks, so the group's root pattern (the sink's) is ELEMWISE while it holds Reshapes."""
    flat = numpy_helper.from_array(np.array([1, 24], np.int64), "flat")
    back = numpy_helper.from_array(np.array([1, 4, 6], np.int64), "back")
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["r"], name="reshape1"),
        helper.make_node("Sigmoid", ["r"], ["s"], name="sigmoid"),
        helper.make_node("Reshape", ["s", "back"], ["b"], name="reshape2"),
        helper.make_node("Tanh", ["b"], ["y"], name="tanh"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6])],
        [flat, back],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_group_pattern_combines_its_members_kinds():
    model = _reshape_sigmoid_model()
    groups = fusion_groups(model)
    assert [g.nodes for g in groups] == [["reshape1", "sigmoid", "reshape2", "tanh"]]
    assert groups[0].pattern == OpKind.INJECTIVE  # not ELEMWISE: it moves elements
    assert groups[0].anchor is None


def test_inspect_reports_the_combined_pattern(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_reshape_sigmoid_model(), path)
    report = inspect_model(str(path))
    assert [g["pattern"] for g in report["fusion"]["groups"]] == ["INJECTIVE"]


def test_add_into_relu_is_broadcast_and_conv_groups_stay_out_ewise_fusable():
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    bias = numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float32), "bias")
    nodes = [
        helper.make_node("Add", ["x", "bias"], ["a"], name="add"),  # BROADCAST edge from x
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["y"], name="relu2"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])],
        [w, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    groups = fusion_groups(model)
    assert [(g.nodes, g.pattern, g.anchor) for g in groups] == [
        (["add", "relu"], OpKind.BROADCAST, None),
        (["conv", "relu2"], OpKind.OUT_EWISE_FUSABLE, "conv"),
    ]
    graph_ir = Graph(model)
    for g in groups:
        kinds = [op_kind(graph_ir.nodes[n].op_type, graph_ir.nodes[n].domain) for n in g.nodes]
        assert g.pattern == max(kinds)
