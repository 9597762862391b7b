"""`dominator_tree` counts constants (a weight, a Reshape of one) as no way in, random ops never
("Random ops ... are never constant"). A Dropout of a weight given a training_mode that is true
(or a graph input) drops at random, as RandomUniformLike of the weight draws, yet
`constant_nodes` called it a constant: Add(Dropout(w, r, true), Relu(x)) hung under the Relu,
where Add(RandomUniformLike(w), Relu(x)) hangs under the entry. Now such a Dropout is random;
one whose training_mode is a constant false (or absent) is the identity, a constant as before."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import dominator_tree
from graphopt.analysis.dominators import as_graph, constant_nodes


def _model(
    first: onnx.NodeProto, extra_inputs: tuple[onnx.ValueInfoProto, ...] = ()
) -> onnx.ModelProto:
    nodes = [
        first,
        helper.make_node("Relu", ["x"], ["rx"], name="relu"),
        helper.make_node("Add", ["d", "rx"], ["y"], name="add"),
    ]
    inits = [
        numpy_helper.from_array(np.ones(4, np.float32), "w"),
        numpy_helper.from_array(np.array(0.5, np.float32), "r"),
        numpy_helper.from_array(np.array(True), "on"),
        numpy_helper.from_array(np.array(False), "off"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]), *extra_inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _dropout(*inputs: str) -> onnx.NodeProto:
    return helper.make_node("Dropout", list(inputs), ["d"], name="drop")


RANDOM = {
    "training_mode true": _model(_dropout("w", "r", "on")),
    "training_mode a graph input": _model(
        _dropout("w", "r", "mode"), (helper.make_tensor_value_info("mode", TensorProto.BOOL, []),)
    ),
    "RandomUniformLike": _model(helper.make_node("RandomUniformLike", ["w"], ["d"], name="drop")),
}
IDENTITY = {
    "training_mode false": _model(_dropout("w", "r", "off")),
    "no training_mode": _model(_dropout("w", "r")),
    "training_mode left out": _model(_dropout("w", "r", "")),
}


@pytest.mark.parametrize("kind", RANDOM)
def test_a_random_dropout_is_a_way_in(kind):
    model = RANDOM[kind]
    assert "drop" not in constant_nodes(as_graph(model))
    assert dominator_tree(model) == {"drop": None, "relu": None, "add": None}


@pytest.mark.parametrize("kind", IDENTITY)
def test_an_inference_dropout_of_a_weight_is_a_constant(kind):
    model = IDENTITY[kind]
    assert "drop" in constant_nodes(as_graph(model))
    assert dominator_tree(model) == {"drop": None, "relu": None, "add": "relu"}
