"""A model file is read, not mapped (`model_io._parse_file`): f0a1ede parsed it straight from
a mapping of its pages, and a file truncated while mapped killed the process with SIGBUS
(tests/test_final_review10.py). A regular file, a pipe or a file that cannot be mapped gives the
same model, and the file is not held open or mapped afterwards."""

from __future__ import annotations

import mmap
import os
import threading

import pytest

from graphopt.errors import LoadError
from graphopt.ir.model_io import load
from tests.models_util import matmul_model


def _mappings(monkeypatch: pytest.MonkeyPatch, refuse: bool = False) -> list[int]:
    """Sizes of the mappings `model_io` makes from now on (each refused when `refuse`)."""
    made: list[int] = []
    real = mmap.mmap

    def counting(fileno: int, length: int, *args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(os.fstat(fileno).st_size)
        if refuse:
            raise OSError(19, "No such device")
        return real(fileno, length, *args, **kwargs)

    monkeypatch.setattr(mmap, "mmap", counting)
    return made


def test_a_model_file_is_read_not_mapped(tmp_path, monkeypatch):
    model = matmul_model()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    made = _mappings(monkeypatch)
    loaded = load(path)
    assert made == []
    assert loaded.model.SerializeToString() == model.SerializeToString()
    # nothing still reads the file: it can be replaced and the model keeps its weights
    other = tmp_path / "other.onnx"
    other.write_bytes(b"\x00" * 64)
    os.replace(other, path)
    assert loaded.model.SerializeToString() == model.SerializeToString()


def test_a_file_that_cannot_be_mapped_is_read(tmp_path, monkeypatch):
    model = matmul_model()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    made = _mappings(monkeypatch, refuse=True)
    assert load(path).model.SerializeToString() == model.SerializeToString()
    assert made == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_read(tmp_path, monkeypatch):
    model = matmul_model()
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    made = _mappings(monkeypatch)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(model.SerializeToString())

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        loaded = load(fifo)
    finally:
        writer.join()
    assert made == []
    assert loaded.model.SerializeToString() == model.SerializeToString()


def test_bad_files_give_the_same_errors(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(LoadError, match="empty file"):
        load(empty)
    data = matmul_model().SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="not an ONNX model"):
        load(cut)
