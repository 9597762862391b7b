"""`graphopt check` on a sparse initializer whose values and indices do not make a sparse
tensor of its dims: indices of another count than the values ("indices outer dimension
should match the number of non-zero values"), an index out of range ("index is out of
bounds"), int32 indices, values that are not one-dim. onnxruntime or onnx.checker refuse
each, and check said "0 errors". Each is now one line naming the initializer, exit 2, as for
a tensor whose data does not make its shape (test_s31_check_damaged_tensor_data)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def _model(values: np.ndarray, indices: np.ndarray, dims: list[int]) -> onnx.ModelProto:
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(values, "w"), numpy_helper.from_array(indices, "wi"), dims
    )
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        sparse_initializer=[sparse],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


F = np.float32
MISFITS = {
    "count": (
        _model(F([5, 6]), np.int64([0]), [2]),
        "has indices of shape [1], where its 2 values need [2] or [2, 1]",
    ),
    "out-of-range": (
        _model(F([5]), np.int64([7]), [2]),
        "has an index out of its dims [2] (a damaged model)",
    ),
    "negative": (_model(F([5]), np.int64([-1]), [2]), "has an index out of its dims [2]"),
    "per-dim-out-of-range": (
        _model(F([5]), np.int64([[0, 3]]), [2, 3]),
        "has an index out of its dims [2, 3]",
    ),
    "int32": (_model(F([5]), np.int32([0]), [2]), "has int32 indices, where ONNX takes int64"),
    "2-d-values": (
        _model(F([[5]]), np.int64([0]), [2]),
        "has values of shape [1, 1], where ONNX takes one-dim values",
    ),
}


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_check_refuses_it_in_one_line(tmp_path, capsys, case) -> None:
    model, said = MISFITS[case]
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"{path}: sparse initializer 'w' {said}" in captured.err


@pytest.mark.parametrize(
    ("indices", "dims"),
    [(np.int64([1]), [2]), (np.int64([[1, 2]]), [2, 3]), (np.int64([5]), [2, 3])],
    ids=["linear", "per-dim", "linear-2-d"],
)
def test_a_whole_sparse_initializer_passes(tmp_path, capsys, indices, dims) -> None:
    """Controls (pass on the parent too)."""
    path = tmp_path / "m.onnx"
    onnx.save(_model(F([5]), indices, dims), path)
    assert main(["check", str(path)]) == 0
    assert "0 errors" in capsys.readouterr().out
