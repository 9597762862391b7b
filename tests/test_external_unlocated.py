"""A model object whose tensors still point at external data files (onnx.load with
load_external_data=False) is refused in one line: the files' locations are relative to the
model's folder, which a ModelProto or bytes do not carry. Before, a pass read them relative to
the current directory: a misleading PassError, or a same-named file's bytes there."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.errors import LoadError


def _saved_with_external_data(folder) -> str:
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "w")
    b = numpy_helper.from_array(np.ones(4, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = folder / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, location="m.data", size_threshold=0)
    return str(path)


def test_a_model_object_with_unloaded_external_data_is_refused(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    path = _saved_with_external_data(tmp_path / "model")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.data").write_bytes(np.full(64, 7, np.uint8).tobytes())  # a decoy
    monkeypatch.chdir(elsewhere)
    unloaded = onnx.load(path, load_external_data=False)
    for given in (unloaded, unloaded.SerializeToString()):
        with pytest.raises(
            LoadError, match=re.escape("keeps tensor 'w' (and 1 more) in external data 'm.data'")
        ):
            graphopt.optimize(given)
    # the path, or the model loaded with its data, still optimizes (and reads the right bytes)
    for given in (path, onnx.load(path)):
        out = graphopt.optimize(given)
        w = next(t for t in out.graph.initializer if t.name == "w")
        np.testing.assert_array_equal(
            numpy_helper.to_array(w), np.arange(16, dtype=np.float32).reshape(4, 4)
        )
