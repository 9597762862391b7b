"""A model importing the default domain twice under one name ("" 11, then "" 13) is read at
the last import everywhere: onnxruntime, the Graph's index and `default_opset` (which read the
first: quantize of such a model stopped in onnx.version_converter)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from graphopt.ir.graph import Graph
from graphopt.ir.nodes import default_opset


def _model(first: int, last: int) -> onnx.ModelProto:
    # Squeeze with axes as an input exists from opset 13 on: only the last import (13) runs it
    graph = helper.make_graph(
        [helper.make_node("Squeeze", ["x", "axes"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])],
        [helper.make_tensor("axes", onnx.TensorProto.INT64, [1], [0])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", first), helper.make_opsetid("", last)]
    )


def test_default_opset_reads_the_last_import_as_onnxruntime_does() -> None:
    model = _model(11, 13)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.ones((1, 3), np.float32)})
    assert y.shape == (3,)  # onnxruntime ran it at 13
    assert default_opset(model) == 13
    assert Graph(model).opset_version("") == default_opset(model)


def test_default_opset_of_one_import_and_of_none() -> None:
    assert default_opset(_model(13, 13)) == 13
    empty = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[])
    assert default_opset(empty) == 0


def test_convert_opset_takes_the_import_in_force() -> None:
    # "" 13 then "" 11: opset 11 is in force (onnxruntime, the Graph); onnx.version_converter
    # asserted "initial_version does not reflect current state of model" on such a model
    from graphopt.ir.opset_conversion import convert_opset

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 13),
            helper.make_opsetid("com.example", 1),
            helper.make_opsetid("", 11),
        ],
    )
    converted = convert_opset(model, 14)
    assert sorted((o.domain, o.version) for o in converted.opset_import) == [
        ("", 14),
        ("com.example", 1),
    ]
    assert len(model.opset_import) == 3  # the caller's model is not changed
    session = ort.InferenceSession(
        converted.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.maximum(x, 0))
