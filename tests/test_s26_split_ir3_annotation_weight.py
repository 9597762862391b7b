"""split keeps the weights a kept quantization annotation names (a scale no node reads), but
declared as graph inputs only those the kept nodes read: in an IR 3 model, where every
initializer must be a graph input, the scale stayed an initializer and not an input, and split
refused a valid model ("the split model fails onnx.checker: S in initializer but not in graph
input"). A kept weight the model declared as an input is declared now."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as h
import onnxruntime as ort
from onnx import TensorProto, numpy_helper

from graphopt.multitask import split


def _model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.full((2,), 3, np.float32), "W")
    s = numpy_helper.from_array(np.array(0.5, np.float32), "S")
    graph = h.make_graph(
        [h.make_node("Add", ["x", "W"], ["a"]), h.make_node("Mul", ["a", "W"], ["b"])],
        "g",
        [
            h.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            h.make_tensor_value_info("W", TensorProto.FLOAT, [2]),
            h.make_tensor_value_info("S", TensorProto.FLOAT, []),
        ],
        [h.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
        [w, s],
    )
    note = onnx.TensorAnnotation(tensor_name="a")
    note.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value="S")
    graph.quantization_annotation.append(note)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 7)])
    model.ir_version = 3
    onnx.checker.check_model(model, full_check=True)
    return model


def test_ir3_annotation_weight_is_declared_an_input() -> None:
    part = split(_model(), ["a"])
    assert [i.name for i in part.graph.input] == ["x", "W", "S"]
    assert [t.name for t in part.graph.initializer] == ["W", "S"]
    assert [a.tensor_name for a in part.graph.quantization_annotation] == ["a"]
    session = ort.InferenceSession(part.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([1.0, -2.0], np.float32)
    (a,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(a, x + 3)
