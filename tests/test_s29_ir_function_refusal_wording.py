"""A required input left out in a model-local function is refused at load (4f35345); its
message said "(onnxruntime refuses the model)", which is not so for a function the graph
never calls (onnxruntime loads and runs the model; onnx.checker refuses it). In a function it
now names onnx.checker; in the main graph still onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from graphopt.errors import LoadError
from graphopt.ir import load


def _uncalled_function_model() -> onnx.ModelProto:
    bad = helper.make_node("EyeLike", [""], ["y"], name="bad")
    function = helper.make_function(
        "d", "f", ["x"], ["y"], [bad], opset_imports=[helper.make_opsetid("", 13)]
    )
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("d", 1)],
        functions=[function],
    )


def test_a_function_left_out_input_names_the_checker_as_what_refuses_it() -> None:
    model = _uncalled_function_model()
    # onnxruntime runs the model; onnx.checker refuses it
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": -np.ones((2, 2), np.float32)})[0].max() == 0.0
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)
    with pytest.raises(LoadError) as caught:
        load(model)
    assert str(caught.value).endswith("(onnx.checker refuses the model)")
    assert "function 'f' (domain 'd'): node 'bad' (EyeLike) leaves out its input 0" in str(
        caught.value
    )


def test_a_main_graph_left_out_input_still_names_onnxruntime() -> None:
    graph = helper.make_graph(
        [helper.make_node("EyeLike", [""], ["y"], name="bad")],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(LoadError) as caught:
        load(model)
    assert str(caught.value).endswith("(onnxruntime refuses the model)")
