"""A model saved with external data over an older one is never left reading another's bytes:
at every file-system step of `save_model` (and after an error at any of them) the model at
the path and the data file it names are the old pair or the new one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from graphopt.errors import SaveError
from graphopt.ir import save_model

X = np.linspace(-2, 2, 32 * 32, dtype=np.float32).reshape(32, 32)
OLD_W = np.ones((32, 32), np.float32)
NEW_W = np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / 100


def _model(op: str, weight: np.ndarray) -> onnx.ModelProto:
    model = onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 17]>
g (float[32,32] x) => (float[32,32] y) {{ y = {op}(x, w) }}
""")
    model.graph.initializer.append(numpy_helper.from_array(weight, "w"))  # 4 KiB: external
    return model


OLD = _model("Add", OLD_W)
NEW = _model("Mul", NEW_W)
OLD_Y = X + OLD_W
NEW_Y = X * NEW_W


def _outputs(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": X})[0]


def _which(path: Path) -> str:
    """'old' or 'new': which complete model the file at `path` and its data are; fails the
    test for a mixed pair (one model reading the other's data) or one that does not load."""
    try:
        y = _outputs(path)
    except Exception as e:  # onnxruntime's own error types
        raise AssertionError(f"{path.name} does not load: {str(e).splitlines()[0]}") from e
    if np.array_equal(y, OLD_Y):
        return "old"
    if np.array_equal(y, NEW_Y):
        return "new"
    raise AssertionError(f"{path.name} reads another model's data: y[0, :3] = {y[0, :3]}")


def _saved_old(folder: Path, name: str = "m.onnx") -> Path:
    path = folder / name
    save_model(OLD, path, external_data=True)
    assert _which(path) == "old"
    return path


def test_an_error_renaming_the_model_leaves_the_old_model_with_its_old_data(tmp_path, monkeypatch):
    """The parent renamed the new data file over the old one and then the model: an error (or
    a crash) between the two left the old model reading the new model's weights."""
    path = _saved_old(tmp_path)
    real_replace = os.replace

    def failing(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(SaveError, match="No space left on device"):
        save_model(NEW, path, external_data=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert _which(path) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def _check_every_step(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[str]:
    """Save NEW over the OLD model at `path`, checking the pair on disk before every rename,
    link and removal; the states seen."""
    seen: list[str] = []
    busy: list[int] = []

    def checked(real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            if not busy:
                busy.append(1)
                try:
                    seen.append(_which(path))
                finally:
                    busy.pop()
            return real(*args, **kwargs)

        return call

    for name in ("replace", "link", "unlink", "rename"):
        monkeypatch.setattr(os, name, checked(getattr(os, name)))
    save_model(NEW, path, external_data=True)
    monkeypatch.undo()
    seen.append(_which(path))
    return seen


def test_at_every_step_of_a_save_over_a_model_the_pair_on_disk_belongs_together(
    tmp_path, monkeypatch
):
    """What a crash (power cut, kill -9) at any moment of the save would leave: checked
    before each rename, link and removal."""
    path = _saved_old(tmp_path)
    seen = _check_every_step(monkeypatch, path)
    assert seen[0] == "old" and seen[-1] == "new"
    assert seen == sorted(seen, key=["old", "new"].index)  # old, ..., old, new, ..., new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    stored = onnx.load(str(path), load_external_data=False)
    assert [e.value for e in stored.graph.initializer[0].external_data if e.key == "location"] == [
        "m.onnx.data"
    ]


def test_a_save_through_a_link_keeps_the_pair_together_at_every_step(tmp_path, monkeypatch):
    (tmp_path / "versions").mkdir()
    real = _saved_old(tmp_path / "versions", "v1.onnx")
    link = tmp_path / "current.onnx"
    link.symlink_to(Path("versions") / "v1.onnx")
    save_model(OLD, link, external_data=True)  # its data beside the link
    seen = _check_every_step(monkeypatch, link)
    assert seen[0] == "old" and seen[-1] == "new"
    assert seen == sorted(seen, key=["old", "new"].index)
    assert link.is_symlink() and Path(os.path.realpath(link)) == real
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "current.onnx",
        "current.onnx.data",
        "versions",
    ]


def test_without_hard_links_the_data_is_copied_and_the_pair_stays_together(tmp_path, monkeypatch):
    path = _saved_old(tmp_path)

    def no_links(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    seen = _check_every_step(monkeypatch, path)
    assert seen[0] == "old" and seen[-1] == "new"
    assert seen == sorted(seen, key=["old", "new"].index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_a_data_file_that_cannot_be_replaced_leaves_the_new_model_with_its_fresh_data(
    tmp_path, monkeypatch, caplog
):
    """The new model and its data are in place under a fresh name before the old data file
    is replaced; when that step fails, the save stands (the model names the fresh file) and a
    warning says where its data went."""
    path = _saved_old(tmp_path)
    data = tmp_path / "m.onnx.data"
    real_replace = os.replace

    def refused(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == data:
            raise OSError(13, "Permission denied")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refused)
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        save_model(NEW, path, external_data=True)
    monkeypatch.undo()
    assert _which(path) == "new"
    stored = onnx.load(str(path), load_external_data=False)
    (location,) = {
        e.value for e in stored.graph.initializer[0].external_data if e.key == "location"
    }
    assert location != "m.onnx.data" and (tmp_path / location).is_file()
    assert location in caplog.text and "Permission denied" in caplog.text
    assert not [
        p.name for p in tmp_path.iterdir() if p.name.startswith(".graphopt-") and p.is_dir()
    ]


def test_a_first_save_writes_the_data_file_under_its_own_name(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    save_model(NEW, path, external_data=True)
    assert _which(path) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_a_folder_where_the_data_file_goes_is_refused_and_the_old_model_kept(tmp_path):
    path = tmp_path / "m.onnx"
    save_model(OLD, path, external_data=False)
    (tmp_path / "m.onnx.data").mkdir()
    with pytest.raises(SaveError, match=r"m\.onnx\.data is a folder"):
        save_model(NEW, path, external_data=True)
    assert _which(path) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


@pytest.mark.parametrize("external", [False, True])
def test_a_model_file_name_of_250_bytes_is_saved_and_saved_over(tmp_path, external):
    """Temporary names were '.graphopt-<12 hex>-<name>': 23 bytes over the name, so a name
    over 232 bytes (which onnx.save writes) was 'cannot write: File name too long'."""
    path = tmp_path / ("m" * 240 + ".onnx")  # its data file: 250 bytes
    save_model(OLD, path, external_data=external)
    save_model(NEW, path, external_data=external)
    assert _which(path) == "new"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [path.name] + [path.name + ".data"] * external


def test_a_copy_cut_short_by_a_full_disk_leaves_no_partial_file(tmp_path, monkeypatch, caplog):
    """No hard links, and the copy that stands in for one fails: the save stands with its
    data under the fresh name (a warning), and the partial copy is removed."""
    import shutil

    path = _saved_old(tmp_path)

    def no_links(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(1, "Operation not permitted")

    def full_disk(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        Path(dst).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        save_model(NEW, path, external_data=True)
    monkeypatch.undo()
    assert _which(path) == "new" and "No space left on device" in caplog.text
    stored = onnx.load(str(path), load_external_data=False)
    (location,) = {
        e.value for e in stored.graph.initializer[0].external_data if e.key == "location"
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", "m.onnx.data", location])
