"""A node writing a sparse initializer's name is not SSA (H233, review of H225's fc517fe).

fc517fe made load's node walk raise the index's SSA error for a node writing a graph input's
or an initializer's name, and gave the index the sparse initializers' names, but the index
(`Graph._writes_a_given_name`) compared node outputs with the inputs and dense initializers
only: a node writing a sparse initializer's name passed load and optimize (exit 0, a model
onnx.checker and onnxruntime refuse). Now refused as the dense case is.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir import load


def test_a_node_writing_a_sparse_initializers_name_is_not_ssa(tmp_path, capsys):
    info = oh.make_tensor_value_info
    sparse = oh.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.0], np.float32), "s"),
        numpy_helper.from_array(np.array([0], np.int64), "si"),
        [4],
    )
    graph = oh.make_graph(
        [
            oh.make_node("Relu", ["x"], ["s"], name="r"),
            oh.make_node("Add", ["s", "x"], ["y"], name="a"),
        ],
        "g",
        [info("x", onnx.TensorProto.FLOAT, [4])],
        [info("y", onnx.TensorProto.FLOAT, [4])],
        sparse_initializer=[sparse],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)
    with pytest.raises(onnx.checker.ValidationError, match="SSA"):
        onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail, match="Duplicate definition"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    said = "tensor 's' is a sparse initializer and is also produced by 'r'; ONNX graphs must be in SSA form"
    for call in (lambda: load(path), lambda: graphopt.optimize(str(path))):
        with pytest.raises(LoadError) as raised:
            call()
        assert str(raised.value) == f"{path}: {said}"
    with pytest.raises(LoadError) as raised:
        graphopt.optimize(model)
    assert str(raised.value) == f"the given ModelProto: {said}"
    out = tmp_path / "out.onnx"
    for argv in (["optimize", str(path), "-o", str(out)], ["inspect", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"{path}: {said}") and "\n" not in err
    assert not out.exists()
