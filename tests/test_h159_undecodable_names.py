"""Tensor names and external data entries that are not UTF-8 (a flipped byte in the file):
protobuf hands them over as bytes. Loading a model whose external-data tensor had such a name
or location raised a TypeError traceback (onnx's loader, or `Path / bytes`); saving with
external data a model whose initializer had such a name raised onnx's writer's TypeError.
Now the load is a one-line LoadError, and the save keeps that tensor inline, as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import LoadError
from graphopt.ir import load, save_model


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"]),
            helper.make_node("Identity", ["ODDNAME1"], ["a"]),
            helper.make_node("Identity", ["plain"], ["b"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [600]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [700]),
        ],
        initializer=[
            numpy_helper.from_array(np.arange(600, dtype=np.float32), "ODDNAME1"),
            numpy_helper.from_array(np.arange(700, dtype=np.float32), "plain"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _flip(data: bytes, word: bytes) -> bytes:
    """`data` with the third byte of `word` (same length: the protobuf framing holds) 0xff."""
    assert data.count(word) >= 1
    return data.replace(word, word[:2] + b"\xff" + word[3:])


@pytest.mark.parametrize(("word", "what"), [(b"ODDNAME1", "name"), (b"m.data", "entry")])
def test_load_refuses_in_one_line(tmp_path: Path, word: bytes, what: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path, save_as_external_data=True, location="m.data")
    path.write_bytes(_flip(path.read_bytes(), word))
    with pytest.raises(LoadError, match="is not UTF-8 text") as caught:
        load(path)
    assert what in str(caught.value)
    assert "\n" not in str(caught.value)
    run = subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", str(path), "-o", str(tmp_path / "o.onnx")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.onnx").exists()


def test_save_keeps_such_a_tensor_inline(tmp_path: Path) -> None:
    source = _flip(_model().SerializeToString(), b"ODDNAME1")
    loaded = load(source)
    assert loaded.model.graph.initializer[0].name == b"OD\xffNAME1"  # as protobuf hands it
    out = save_model(loaded.model, tmp_path / "o.onnx", external_data=True)
    stored = onnx.load(out, load_external_data=False)
    odd, plain = stored.graph.initializer
    assert odd == loaded.model.graph.initializer[0]  # inline, as it was
    assert plain.data_location == TensorProto.EXTERNAL
    back = onnx.load(out)
    np.testing.assert_array_equal(
        numpy_helper.to_array(back.graph.initializer[1]), np.arange(700, dtype=np.float32)
    )
    assert back.graph.initializer[0] == loaded.model.graph.initializer[0]
