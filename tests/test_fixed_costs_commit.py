"""A last commit (`reindex=False`) that copies every node back writes the same model as the
commit that keeps the protobuf's own nodes, and keeps them when they hold much data."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.ir import Graph
from graphopt.ir import graph as graph_module

F32 = np.float32


def _chain(constant_floats: int) -> onnx.ModelProto:
    """x → Relu ×8 → Add(k) → y, k a Constant node of `constant_floats` floats."""
    nodes = [
        helper.make_node("Relu", ["x" if i == 0 else f"r{i - 1}"], [f"r{i}"]) for i in range(8)
    ]
    k = numpy_helper.from_array(np.ones(constant_floats, F32))
    nodes.append(helper.make_node("Constant", [], ["k"], value=k))
    nodes.append(helper.make_node("Add", ["r7", "k"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [constant_floats])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [constant_floats])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _edit(model: onnx.ModelProto) -> tuple[Graph, onnx.NodeProto]:
    """Drop Relu 1..7 (most nodes gone) and add a Sigmoid and a Neg: y = 1 - sigmoid(relu(x));
    the held Constant node is returned."""
    graph = Graph(model)
    for i in range(1, 8):
        relu = graph.producer_node(f"r{i}")
        assert relu is not None
        graph.remove_node(relu)
    graph.make_node("Neg", ["s"], ["r7"])
    graph.make_node("Sigmoid", ["r0"], ["s"])  # added after its reader: commit reorders
    constant = graph.producer_node("k")
    assert constant is not None
    return graph, constant


def test_a_last_commit_writes_what_a_reindexing_commit_writes():
    model = _chain(16)
    kept, _ = _edit(onnx.ModelProto.FromString(model.SerializeToString()))
    last, constant = _edit(onnx.ModelProto.FromString(model.SerializeToString()))
    expected = kept.commit().SerializeToString()
    result = last.commit(reindex=False)
    assert result.SerializeToString() == expected
    assert [n.op_type for n in result.graph.node] == ["Relu", "Constant", "Sigmoid", "Neg", "Add"]
    assert all(n is not constant for n in result.graph.node)  # every node copied back
    x = np.linspace(-2, 2, 16, dtype=F32)
    (y,) = ort_run(result, {"x": x}).values()
    np.testing.assert_allclose(y, 1 - 1 / (1 + np.exp(-np.maximum(x, 0))), rtol=1e-5)


def test_a_last_commit_keeps_nodes_that_hold_much_data(monkeypatch):
    monkeypatch.setattr(graph_module, "COPY_ALL_MAX_BYTES", 1000)
    model = _chain(1024)  # a 4 KB Constant is still held
    kept, _ = _edit(onnx.ModelProto.FromString(model.SerializeToString()))
    last, constant = _edit(onnx.ModelProto.FromString(model.SerializeToString()))
    expected = kept.commit().SerializeToString()
    result = last.commit(reindex=False)
    assert result.SerializeToString() == expected
    assert any(n is constant for n in result.graph.node)  # not copied
