"""save_model with external data: a temporary folder that cannot be removed once the model and
its data file are in place is no failed save. Its removal came last and its error was raised
as a SaveError ('cannot write') of a model written whole, beside it, with the new weights."""

from __future__ import annotations

import errno
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir import load, save_model


def _model(value: float) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.full((4, 300), value, np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 300])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 300])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g", [x], [y], [weight]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _weight(path: os.PathLike[str]) -> float:
    return float(numpy_helper.to_array(load(path).model.graph.initializer[0])[0, 0])


def test_a_temporary_folder_left_after_the_save_is_no_save_error(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    save_model(_model(1.0), path, external_data=True)
    real_rmdir = os.rmdir

    def rmdir(folder, *args, **kwargs):  # the save's own folder cannot be removed (EIO)
        if os.path.basename(os.fspath(folder)).startswith(".graphopt-"):
            raise OSError(errno.EIO, "Input/output error", os.fspath(folder))
        return real_rmdir(folder, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", rmdir)
    save_model(_model(2.0), path, external_data=True)  # (raised SaveError: cannot write)
    monkeypatch.undo()
    assert _weight(path) == 2.0
    assert (tmp_path / "m.onnx.data").is_file()
