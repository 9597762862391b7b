"""What `convert_opset` (optimize's upgrade_opset, quantize, merge, TensorRT float16) keeps:
sparse initializers (the converter failed on them: "Input S is undefined!"), initializers'
metadata_props (dropped), and training_info (dropped silently by quantize's and merge's
upgrades: now refused, as optimize's upgrade_opset already did)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from graphopt.errors import OpsetConversionError
from graphopt.ir.opset_conversion import convert_opset

X = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8)


def _model() -> onnx.ModelProto:
    """y = Clip(x + S, 0, 1) + W at opset 11, S a sparse initializer."""
    sparse = oh.make_sparse_tensor(
        numpy_helper.from_array(np.array([0.5, 0.25], np.float32), "S"),
        numpy_helper.from_array(np.array([1, 6], np.int64), "S_i"),
        [1, 8],
    )
    weight = numpy_helper.from_array(np.full((1, 8), 0.125, np.float32), "W")
    weight.doc_string = "W doc"
    weight.metadata_props.add(key="origin", value="layer3")
    graph = oh.make_graph(
        [
            oh.make_node("Add", ["x", "S"], ["a"], name="add"),
            oh.make_node("Clip", ["a", "lo", "hi"], ["c"], name="clip"),
            oh.make_node("Add", ["c", "W"], ["y"], name="add_w"),
        ],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [
            weight,
            numpy_helper.from_array(np.float32(0), "lo"),
            numpy_helper.from_array(np.float32(1), "hi"),
        ],
        sparse_initializer=[sparse],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 11)], ir_version=7)


def _run(model: onnx.ModelProto) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": X})[0]


def test_a_model_with_a_sparse_initializer_is_converted_and_keeps_it():
    model = _model()
    converted = convert_opset(model, 17)
    assert converted.opset_import[0].version == 17
    assert [vi.name for vi in converted.graph.input] == ["x"]
    assert [s.SerializeToString() for s in converted.graph.sparse_initializer] == [
        s.SerializeToString() for s in model.graph.sparse_initializer
    ]
    np.testing.assert_array_equal(_run(converted), _run(model))
    assert model.graph.sparse_initializer and [vi.name for vi in model.graph.input] == ["x"]


def _dense_model() -> onnx.ModelProto:
    model = _model()
    del model.graph.sparse_initializer[:]
    model.graph.node[0].input[1] = "W"
    return model


def test_initializer_doc_strings_and_metadata_props_survive_the_conversion():
    converted = convert_opset(_dense_model(), 17)
    (weight,) = [t for t in converted.graph.initializer if t.name == "W"]
    assert weight.doc_string == "W doc"
    assert [(p.key, p.value) for p in weight.metadata_props] == [("origin", "layer3")]


def test_a_model_with_training_info_is_refused_not_converted_without_it():
    model = _dense_model()
    model.training_info.add().algorithm.name = "train"
    with pytest.raises(OpsetConversionError, match="drops the model's training_info") as e:
        convert_opset(model, 17)
    assert e.value.kind == "training-info"
