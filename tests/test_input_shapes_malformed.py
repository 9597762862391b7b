"""`input_shapes` on a model ONNX's C++ inference cannot read (a Loop with no body): no
traceback (graphopt/api.py `_strict_inference_error`)."""

from __future__ import annotations

import onnx.helper as oh
from onnx import TensorProto

import graphopt


def test_input_shapes_on_a_loop_without_a_body_is_no_bare_value_error():
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = oh.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    graph = oh.make_graph([oh.make_node("Loop", ["x"], ["y"], name="loop")], "g", [x], [y])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    # the same as without input_shapes: optimize leaves what it cannot read alone
    out = graphopt.optimize(model, input_shapes={"x": [1, 3]})
    assert [n.op_type for n in out.graph.node] == ["Loop"]
    dims = [d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3]
