"""eliminate-dead-code: dead nodes, unused initializers, and the graph inputs that must stay."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper

from tests.models_util import run


def _model(ir_version: int) -> onnx.ModelProto:
    graph = oh.make_graph(
        [
            oh.make_node("Relu", ["x"], ["y"], name="r"),
            oh.make_node("Neg", ["x"], ["dead"], name="n"),
        ],
        "g",
        [
            oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2]),
            oh.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [2]),
        ],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
        [
            numpy_helper.from_array(np.ones(2, np.float32), "w"),
            numpy_helper.from_array(np.ones(3, np.float32), "unused"),
        ],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = ir_version
    return model


def test_dead_nodes_and_unused_initializers_go_but_overridable_inputs_stay():
    out = run(_model(8), "eliminate-dead-code")
    assert [n.op_type for n in out.graph.node] == ["Relu"]
    assert [t.name for t in out.graph.initializer] == ["w"]  # "unused" dropped
    assert [i.name for i in out.graph.input] == ["x", "w"]  # w is part of the interface (IR >= 4)


def test_before_ir4_initializer_inputs_are_dropped_with_their_initializer():
    model = _model(3)
    model.graph.input.append(oh.make_tensor_value_info("unused", onnx.TensorProto.FLOAT, [3]))
    out = run(model, "eliminate-dead-code")
    assert [t.name for t in out.graph.initializer] == []
    assert [i.name for i in out.graph.input] == ["x"]
