"""The stale-temporary cleanups remove only files of the user the process runs as: root (or a
member of a group-writable folder) removed another user's killed save's temporary too, a file
that is not ours (`model_io.made_by_this_user`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import graphopt.ir.model_io as model_io

BEFORE = model_io.STARTED - 60

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root"
)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _stale(folder: Path, name: str, uid: int | None) -> Path:
    path = folder / f".graphopt-{_dead_pid()}-0123456789ab-{name}"
    path.write_bytes(b"half a model")
    if uid is not None:
        os.chown(path, uid, -1)
    os.utime(path, (BEFORE, BEFORE))
    return path


@needs_root
def test_another_users_stale_temporary_is_left(tmp_path: Path) -> None:
    theirs = _stale(tmp_path, "theirs.onnx", 12345)
    ours = _stale(tmp_path, "ours.onnx", None)
    removed = model_io.remove_stale_temporaries(tmp_path)
    assert removed == [ours]
    assert theirs.exists() and not ours.exists()


def test_made_by_this_user() -> None:
    st = os.stat(__file__)
    assert model_io.made_by_this_user(st) == (st.st_uid == os.getuid())
    fake = os.stat_result((0o100644, 0, 0, 1, os.getuid() + 1, 0, 0, 0, int(time.time()), 0))
    assert not model_io.made_by_this_user(fake)
