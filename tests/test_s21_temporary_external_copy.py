"""`model_io.temporary_file_with_external_data`: the one way merge's check, split's inference,
merge --verify and distill's teacher session read a model over 2 GiB (from a temporary copy
with external data). The copy and its folder go when the block ends, an error or not, and a
copy that cannot be written says where it was going (TMPDIR), not only a `.graphopt-` path."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnx.helper as oh
import pytest

from graphopt.errors import SaveError
from graphopt.ir import model_io
from graphopt.ir.model_io import temporary_file_with_external_data


def _model() -> onnx.ModelProto:
    x = oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    graph = oh.make_graph([oh.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def test_the_copy_is_readable_and_removed_after(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with temporary_file_with_external_data(_model(), "teacher.onnx") as path:
        assert path.name == "teacher.onnx" and path.parent.parent == tmp_path
        onnx.checker.check_model(str(path), full_check=True)
        assert onnx.load(str(path)).graph.node[0].op_type == "Relu"
    assert list(tmp_path.iterdir()) == []


def test_the_copy_is_removed_when_the_block_raises(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(KeyError), temporary_file_with_external_data(_model()):
        raise KeyError("x")
    assert list(tmp_path.iterdir()) == []


def test_a_copy_that_cannot_be_written_names_tmpdir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def full(model, path, **_):
        raise SaveError(f"{path}: cannot write: No space left on device")

    monkeypatch.setattr(model_io, "save_model", full)
    with pytest.raises(SaveError) as caught, temporary_file_with_external_data(_model()):
        pass
    message = str(caught.value)
    assert f"into {tmp_path} (TMPDIR)" in message and "No space left on device" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []
