"""The index's naming and wiring: fresh names avoid every name the model defines (sparse
initializers included), a checked index (`check_as`, what `optimize` builds) names and wires
exactly as an unchecked one, and its inlined registration keeps `_register`'s errors."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import helper, numpy_helper

from graphopt.errors import LoadError
from graphopt.ir import Graph


def _sparse(name: str) -> onnx.SparseTensorProto:
    values = numpy_helper.from_array(np.array([1.0], np.float32), name)
    indices = numpy_helper.from_array(np.array([0], np.int64), "")
    return helper.make_sparse_tensor(values, indices, [2])


def _model_with_sparse(name: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", name], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
        sparse_initializer=[_sparse(name)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("check", [None, "model.onnx"])
def test_a_fresh_name_is_never_a_sparse_initializers(check):
    """A new tensor named like a sparse initializer defines it twice (the parent handed out
    the sparse initializer's name: its `taken` names lacked them)."""
    graph = Graph(_model_with_sparse("Relu_out"), check_as=check)
    node = graph.make_node("Relu", ["y"])
    assert node.output[0] != "Relu_out"
    assert graph.unique_name("Relu_out") != "Relu_out"
    assert "Relu_out" in graph.names_in_use()


NAMELESS = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2] x) => (float[2] y) {
    Neg_1 = Relu(x)
    b = Neg(Neg_1)
    Add_2 = Add(Neg_1, b)
    y = If (Add_2) <then_branch = t () => (float[2] o) { o = Identity(Neg_1) },
                    else_branch = e () => (float[2] o) { o = Identity(b) }>
}
"""


def test_a_checked_index_names_and_wires_as_an_unchecked_one():
    """Nameless nodes whose hints are tensor names: the checked index (which reads node
    outputs as taken from its `defined` set) gives the same names, wiring and fresh names."""
    graphs = [Graph(onnx.parser.parse_model(NAMELESS), check_as=c) for c in (None, "m")]
    first, second = graphs
    assert list(first.nodes) == list(second.nodes)
    # an earlier node's output is taken when a node is named, its own outputs not yet
    assert list(first.nodes) == ["Relu_0", "Neg_1_1", "Add_2", "If_3"]
    assert first.producer == second.producer
    assert first.consumers == second.consumers
    assert first._implicit == second._implicit == {"If_3": {"Neg_1", "b"}}
    assert first._wiring == second._wiring
    assert [g.unique_name(h) for g in graphs for h in ("Neg_1", "Relu_0", "b", "o")] == [
        "Neg_1_2",
        "Relu_0_1",
        "b_1",
        "o_1",
    ] * 2
    assert first.names_in_use() == second.names_in_use()


def test_a_tensor_written_twice_is_the_same_error_checked_or_not():
    text = """
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[2] x) => (float[2] y) {
        y = Relu(x)
        y = Neg(x)
    }
    """
    messages = []
    for check in (None, "m"):
        with pytest.raises(LoadError, match="produced by both") as e:
            Graph(onnx.parser.parse_model(text), check_as=check)
        messages.append(str(e.value))
    assert messages[1] == f"m: {messages[0]}"  # checked: named as `check_as` (H225)
    assert "tensor 'y' is produced by both 'Relu_0' and 'Neg_1'" in messages[0]
