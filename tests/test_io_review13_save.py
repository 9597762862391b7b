"""Review 13: a save with external data over an older model leaves no temporary
(`.graphopt-...`) file beside its output on any exit: success, the warning paths (the data
file cannot be replaced; another save replaced it meanwhile), an error, or an interrupt
between the steps. Before, the warning paths kept the new data under its fresh temporary
name for good, and an interrupt after the second step left the model naming it."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import graphopt.ir.model_io as model_io
from graphopt.errors import SaveError
from graphopt.ir import save_model

X = np.linspace(-2, 2, 32 * 32, dtype=np.float32).reshape(32, 32)
OLD_W = np.ones((32, 32), np.float32)
NEW_W = np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / 100
OTHER_W = np.full((32, 32), 7, np.float32)


def _model(op: str, weight: np.ndarray) -> onnx.ModelProto:
    model = onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 17]>
g (float[32,32] x) => (float[32,32] y) {{ y = {op}(x, w) }}
""")
    model.graph.initializer.append(numpy_helper.from_array(weight, "w"))  # 4 KiB: external
    return model


OLD = _model("Add", OLD_W)
NEW = _model("Mul", NEW_W)


def _which(path: Path) -> str:
    """'old' or 'new': which complete model the file at `path` and its data are (onnx.load
    and onnxruntime agree); fails the test for a mixed pair or one that does not load."""
    loaded = onnx.load(str(path))
    w = numpy_helper.to_array(loaded.graph.initializer[0])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": X})[0]
    if np.array_equal(y, X + OLD_W) and np.array_equal(w, OLD_W):
        return "old"
    if np.array_equal(y, X * NEW_W) and np.array_equal(w, NEW_W):
        return "new"
    raise AssertionError(f"{path.name} reads another model's data: y[0, :3] = {y[0, :3]}")


def _location(path: Path) -> str:
    stored = onnx.load(str(path), load_external_data=False)
    (location,) = {
        e.value for e in stored.graph.initializer[0].external_data if e.key == "location"
    }
    return location


def _temporary(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".graphopt-"))


def _saved_old(folder: Path) -> Path:
    path = folder / "m.onnx"
    save_model(OLD, path, external_data=True)
    assert _which(path) == "old"
    return path


def _refuse_replacing(monkeypatch: pytest.MonkeyPatch, data: Path) -> None:
    real_replace = os.replace

    def refused(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == data:
            raise OSError(13, "Permission denied")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refused)


def _no_links(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)


@pytest.mark.parametrize("links", [True, False])
def test_a_data_file_that_cannot_be_replaced_leaves_no_temporary_file(
    tmp_path, monkeypatch, caplog, links
):
    path = _saved_old(tmp_path)
    _refuse_replacing(monkeypatch, tmp_path / "m.onnx.data")
    if not links:
        _no_links(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        save_model(NEW, path, external_data=True)
    monkeypatch.undo()
    assert _temporary(tmp_path) == []
    assert _which(path) == "new" and _location(path) == "m.onnx-1.data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx-1.data", "m.onnx.data"]
    assert "saved with its data in m.onnx-1.data" in caplog.text
    assert "Permission denied" in caplog.text
    # a later save that can replace the data file names it again; the own name is the user's
    save_model(NEW, path, external_data=True)
    assert _which(path) == "new" and _location(path) == "m.onnx.data"
    assert _temporary(tmp_path) == []


def test_the_own_name_skips_names_taken(tmp_path, monkeypatch):
    path = _saved_old(tmp_path)
    (tmp_path / "m.onnx-1.data").write_bytes(b"someone's")
    _refuse_replacing(monkeypatch, tmp_path / "m.onnx.data")
    save_model(NEW, path, external_data=True)
    monkeypatch.undo()
    assert _which(path) == "new" and _location(path) == "m.onnx-2.data"
    assert (tmp_path / "m.onnx-1.data").read_bytes() == b"someone's"
    assert _temporary(tmp_path) == []


def test_a_data_file_replaced_by_another_save_meanwhile_leaves_no_temporary_file(
    tmp_path, monkeypatch, caplog
):
    """Another save puts its own data file in place just after this one did (its model is
    not put here): this save's model names its own data, under a name of its own."""
    path = _saved_old(tmp_path)
    data = tmp_path / "m.onnx.data"
    real_replace = os.replace

    def raced(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_replace(src, dst, *args, **kwargs)
        if Path(dst) == data and Path(src).name.startswith(".graphopt-"):
            other = tmp_path / "other.data"
            other.write_bytes(OTHER_W.tobytes())
            real_replace(other, data)

    monkeypatch.setattr(os, "replace", raced)
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        save_model(NEW, path, external_data=True)
    monkeypatch.undo()
    assert "replaced by another save meanwhile" in caplog.text
    assert _which(path) == "new" and _location(path) == "m.onnx-1.data"
    assert _temporary(tmp_path) == []


def test_a_model_that_cannot_be_put_after_the_data_file_was_replaced(tmp_path, monkeypatch, caplog):
    """The fourth step fails (the model naming the data file is not put): there is no way
    back (the old data is gone), so the data gets its own name and the model names that."""
    path = _saved_old(tmp_path)
    real_replace = os.replace
    calls = []

    def second_refused(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == path:
            calls.append(src)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", second_refused)
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        save_model(NEW, path, external_data=True)
    monkeypatch.undo()
    assert len(calls) == 3
    # onnx.load refuses a data file with two names (m.onnx.data was a link to the new data)
    assert _which(path) == "new" and _location(path) == "m.onnx-1.data"
    assert "m.onnx.data was replaced, but the model naming it could not be put" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx-1.data"]


def test_when_the_data_cannot_be_given_its_own_name_the_old_model_is_kept(tmp_path, monkeypatch):
    """No hard links, and no name can be reserved either: the save is refused (one line) and
    the old pair stays, with no temporary file."""
    path = _saved_old(tmp_path)
    _refuse_replacing(monkeypatch, tmp_path / "m.onnx.data")
    real_open = os.open

    def no_new_names(file, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(file).name.startswith("m.onnx-"):
            raise OSError(30, "Read-only file system")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_new_names)
    _no_links(monkeypatch)
    with pytest.raises(SaveError) as caught:
        save_model(NEW, path, external_data=True)
    monkeypatch.undo()
    message = str(caught.value)
    assert "\n" not in message and "m.onnx.data could not be replaced" in message
    assert "m.onnx-1.data" in message and "old model is kept" in message
    assert _which(path) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def _caller(frame: Any) -> str:
    """The file of the first caller that is not pathlib or shutil (`Path.unlink`, `copy2`)."""
    while frame is not None and frame.f_code.co_filename.endswith(("pathlib.py", "shutil.py")):
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else ""


def _interrupted_at(monkeypatch: pytest.MonkeyPatch, step: int) -> list[str]:
    """Raise KeyboardInterrupt just after the `step`-th file-system call (rename, link,
    removal, chmod, copy) that model_io makes (itself or through pathlib and shutil); the
    calls seen."""
    seen: list[str] = []
    source = model_io.__file__

    def interrupting(name, real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            result = real(*args, **kwargs)
            if _caller(sys._getframe(1)) == source:
                seen.append(name)
                if len(seen) == step:
                    raise KeyboardInterrupt
            return result

        return call

    for name in ("replace", "link", "unlink", "chmod"):
        monkeypatch.setattr(os, name, interrupting(name, getattr(os, name)))
    monkeypatch.setattr(shutil, "copyfile", interrupting("copyfile", shutil.copyfile), raising=True)
    return seen


@pytest.mark.parametrize("case", ["plain", "no-links", "refused", "refused-no-links"])
def test_an_interrupt_between_any_two_steps_leaves_a_pair_and_no_temporary_file(
    tmp_path, monkeypatch, case
):
    """KeyboardInterrupt after each file-system step of a save over a model (and of its
    warning path): the old pair or the new, and nothing else, in the folder."""
    steps = 0
    outcomes = set()
    while True:
        steps += 1
        folder = tmp_path / str(steps)
        folder.mkdir()
        path = _saved_old(folder)
        if "refused" in case:
            _refuse_replacing(monkeypatch, folder / "m.onnx.data")
        if "no-links" in case:
            _no_links(monkeypatch)
        seen = _interrupted_at(monkeypatch, steps)
        try:
            save_model(NEW, path, external_data=True)
        except KeyboardInterrupt:
            interrupted = True
        else:
            interrupted = False
        monkeypatch.undo()
        assert _temporary(folder) == [], (steps, seen)
        which = _which(path)
        outcomes.add(which)
        names = sorted(p.name for p in folder.iterdir())
        if _location(path) == "m.onnx.data":
            assert names == ["m.onnx", "m.onnx.data"], (steps, seen)
        else:
            assert which == "new" and names == ["m.onnx", "m.onnx-1.data", "m.onnx.data"]
        if not interrupted:
            break
    assert steps > 4 and outcomes == {"old", "new"}


def test_the_cli_output_on_the_warning_path_leaves_no_temporary_file(tmp_path, monkeypatch):
    """`graphopt optimize IN -o OUT` over an OUT saved with external data (IN has external
    data, so OUT gets it too), its data file not replaceable."""
    from graphopt.cli import main

    src = tmp_path / "in" / "m.onnx"
    src.parent.mkdir()
    save_model(NEW, src, external_data=True)
    out = _saved_old(tmp_path)
    _refuse_replacing(monkeypatch, tmp_path / "m.onnx.data")
    assert main(["optimize", str(src), "-o", str(out)]) == 0
    monkeypatch.undo()
    assert _temporary(tmp_path) == []
    assert _which(out) == "new" and _location(out) == "m.onnx-1.data"
