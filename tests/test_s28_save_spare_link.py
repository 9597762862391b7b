"""A save with external data over an existing pair ends by removing the new data's fresh name,
a hard link beside the data file. Where that unlink failed (EIO), a warning said so and the
data file kept two names: onnx.load refuses such a file ('multiple hard links'), though
onnxruntime runs it. Now the fresh name is unlinked again, else moved into the save's
temporary folder (which goes with the save); where that fails too, the model names the fresh
file and the data file's other name goes; where nothing can be removed, a SaveError says which
file to remove."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphopt.ir.model_io as model_io
from graphopt.errors import SaveError
from graphopt.ir import save_model
from tests.models_util import add_model, saved_weight


def _fresh_data_name(name: str) -> bool:
    """Whether `name` is the new data's fresh name beside the data file."""
    return os.path.basename(name).startswith(model_io.temporary_prefix(model_io._NEW_DATA))


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """os.unlink (and os.replace, as the source, where the set holds "replace") fail with EIO
    for the kinds of paths named in the set returned: "fresh" (the fresh data name beside the
    data file), "final" (the data file m.onnx.data, not the one in the save's temporary
    folder); a call with dir_fd (the temporary folder's cleanup) never fails."""
    kinds: set[str] = set()
    unlink, replace = os.unlink, os.replace

    def fails(p: object, dir_fd: int | None) -> bool:
        if dir_fd is not None:
            return False
        name = os.fspath(p)  # type: ignore[call-overload]
        return ("fresh" in kinds and _fresh_data_name(name)) or (
            "final" in kinds
            and os.path.basename(name) == "m.onnx.data"
            and not os.path.basename(os.path.dirname(name)).startswith(".graphopt-")
        )

    def failing_unlink(p: object, *, dir_fd: int | None = None) -> None:
        if fails(p, dir_fd):
            raise OSError(errno.EIO, "Input/output error", os.fspath(p))  # type: ignore[call-overload]
        unlink(p, dir_fd=dir_fd)  # type: ignore[arg-type]

    def failing_replace(src: object, dst: object, **kw: object) -> None:
        if "replace" in kinds and fails(src, None):
            raise OSError(errno.EIO, "Input/output error", os.fspath(src))  # type: ignore[call-overload]
        replace(src, dst, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", failing_unlink)
    monkeypatch.setattr(os, "replace", failing_replace)
    return kinds


def _pair(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    save_model(add_model(1.0), path, external_data=True)
    assert (tmp_path / "m.onnx.data").stat().st_nlink == 1
    return path


def _data_files(path: Path) -> list[Path]:
    model = onnx.load(str(path), load_external_data=False)
    return sorted(
        {
            path.parent / e.value
            for t in model.graph.initializer
            for e in t.external_data
            if e.key == "location"
        }
    )


def _assert_loads_with(path: Path, weight: float) -> None:
    """onnx.load reads the model at `path` (its data file of one name), and it adds `weight`."""
    for data in _data_files(path):
        assert data.stat().st_nlink == 1, data
    assert saved_weight(path) == weight  # onnx.load refuses a data file with two links
    x = np.zeros((32, 32), np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x + weight)


def test_a_spare_name_that_cannot_be_unlinked_is_moved_away(
    tmp_path: Path, failing: set[str]
) -> None:
    path = _pair(tmp_path)
    failing.add("fresh")
    save_model(add_model(2.0), path, external_data=True)
    assert _data_files(path) == [tmp_path / "m.onnx.data"]
    _assert_loads_with(path, 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_a_spare_name_that_cannot_be_moved_either_is_the_data_files_name(
    tmp_path: Path, failing: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = _pair(tmp_path)
    failing.update({"fresh", "replace"})
    save_model(add_model(3.0), path, external_data=True)
    (data,) = _data_files(path)
    assert _fresh_data_name(data.name)  # the fresh name, the model's for good
    _assert_loads_with(path, 3.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", data.name])
    assert "saved with its data in" in caplog.text


def test_a_data_file_no_name_of_which_can_go_is_a_save_error(
    tmp_path: Path, failing: set[str]
) -> None:
    path = _pair(tmp_path)
    failing.update({"fresh", "final", "replace"})
    with pytest.raises(SaveError, match="has two names") as e:
        save_model(add_model(4.0), path, external_data=True)
    assert "\n" not in str(e.value)
    assert f"remove {tmp_path / 'm.onnx.data'}" in str(e.value)
    failing.clear()
    (tmp_path / "m.onnx.data").unlink()  # as the error says
    _assert_loads_with(path, 4.0)
