"""An interrupted save that puts back an old model it kept as a copy says nothing was written.

`graphopt optimize m.onnx -o o.onnx` with external data over an existing o.onnx and
o.onnx.data, on a file system without hard links: the save keeps the old model as a copy
(`model_io._keep_old_model`), and a Ctrl-C between its steps puts that copy back
(`model_io._Swap.settle`). The old model is in place, but as a new file: `save_output`, which
tells "wrote" from "nothing was written" by the file's identity (H235), said "interrupted; wrote
o.onnx", and `quantize` kept the run's cache and sidecar beside the old model. Now the
interrupt carries `model_io.OLD_MODEL_PUT_BACK` and both say nothing was written. Control: an
interrupt once the data file is replaced (the new model stands) still says "wrote o.onnx".
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import graphopt.ir.model_io as model_io
from graphopt import cli
from tests.test_h235_interrupt_link_put_back import _model, _save, _setup, _weight


def _no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refused)


def _interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise KeyboardInterrupt


@pytest.mark.parametrize("link", [False, True])
def test_optimize_says_nothing_was_written(tmp_path, monkeypatch, capsys, link) -> None:  # type: ignore[no-untyped-def]
    _setup(tmp_path, link)
    _no_hard_links(monkeypatch)
    monkeypatch.setattr(model_io, "_replace_by_link", _interrupted)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["optimize", "m.onnx", "-o", "o.onnx"]) == 130
    assert capsys.readouterr().err == "graphopt optimize: interrupted; nothing was written\n"
    assert _weight(tmp_path) == 1.0  # the old model, with its old data
    assert os.path.islink(tmp_path / "o.onnx") is link
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".graphopt")]


def test_optimize_once_the_data_is_replaced_says_wrote(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _setup(tmp_path, link=False)
    _no_hard_links(monkeypatch)
    real = model_io._replace_by_link

    def replaced_then_interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        real(*args, **kwargs)  # (a copy: no links here)
        raise KeyboardInterrupt

    monkeypatch.setattr(model_io, "_replace_by_link", replaced_then_interrupted)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["optimize", "m.onnx", "-o", "o.onnx"]) == 130
    assert capsys.readouterr().err == (
        "graphopt optimize: interrupted; wrote o.onnx; only what came after (the report) was "
        "cut short\n"
    )
    assert _weight(tmp_path) == 2.0


def test_quantize_puts_its_cache_back_too(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _setup(tmp_path, link=False)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(2):  # a ramp per sample (the save is under test, not the calibration)
        x = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(1, 64) * (i + 1)
        np.save(calib / f"{i}.npy", x)
    _save(_model(3.0), tmp_path / "m.onnx")
    (tmp_path / "c.cache").write_bytes(b"OLD CACHE")
    _no_hard_links(monkeypatch)
    monkeypatch.setattr(model_io, "_replace_by_link", _interrupted)
    monkeypatch.chdir(tmp_path)
    argv = ["quantize", "m.onnx", "--calib", "calib", "-o", "o.onnx", "--cache", "c.cache"]
    assert cli.main([*argv, "--no-progress"]) == 130
    assert capsys.readouterr().err == "graphopt quantize: interrupted; nothing was written\n"
    assert _weight(tmp_path) == 1.0
    assert Path("c.cache").read_bytes() == b"OLD CACHE"
    assert not Path("c.cache.graphopt.json").exists()


def test_a_reused_inode_is_not_taken_for_the_old_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The old model kept as a copy frees its inode once the new model replaces it; a later
    file (the new model under its data's own name) may get that inode. `settle` told "the old
    model is still there" by (device, inode) alone: it left the new model and said it had put
    the old one back. Now mtime and size count too, and the old model is put back."""
    old, new = _model(1.0).SerializeToString(), _model(2.0).SerializeToString() + b"\n"
    target = tmp_path / "o.onnx"
    target.write_bytes(new)  # the new model, in the old model's inode (as if reused)
    (tmp_path / "o.onnx.data").write_bytes(b"old data")
    kept = tmp_path / "kept"
    kept.write_bytes(old)
    st = os.stat(target)
    swap = model_io._Swap(
        path=target,
        target=target,
        final=tmp_path / "o.onnx.data",
        fresh=tmp_path / "fresh.data",
        model_tmp=tmp_path / "model.tmp",
        old_data_id=model_io._file_id(tmp_path / "o.onnx.data"),
        old_model_id=(st.st_dev, st.st_ino),
        old_model=kept,
    )
    swap.old_model_stamp = (st.st_dev, st.st_ino, st.st_mtime_ns - 10**9, len(old))
    swap.settle()
    assert swap.put_back
    assert target.read_bytes() == old
