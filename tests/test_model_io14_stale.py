"""A save killed before it could tidy up (SIGKILL, a power cut) left its temporary beside the
output for good: `.graphopt-<hex>-m.onnx` (the model written whole before its rename), or the
folder `.graphopt-<random>` holding the external data. A save's temporaries are named for its
process now (`.graphopt-<pid>-...`), and the next save into the folder removes those whose
process is gone and that were last changed before it started, as the model cache removes a
killed extraction's partial file; never a live process's, one of another name, or new
external data that a model names."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import graphopt.ir.model_io as model_io
from graphopt.ir import save_model
from tests.models_util import add_model, saved_weight

# as if left before this process started (the parent commit has no STARTED: its import time)
BEFORE = getattr(model_io, "STARTED", time.time()) - 60


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _age(path: Path, when: float = BEFORE) -> None:
    os.utime(path, (when, when), follow_symlinks=False)


# the save is killed once it has written half of what it writes: the model file (inline), or
# the model naming its data, in the temporary folder (external data)
KILLED = """
import os, signal, sys
import numpy as np
from onnx import numpy_helper, parser
import graphopt.ir.model_io as model_io
model = parser.parse_model('<ir_version: 8, opset_import: ["" : 17]> '
                           'g (float[32,32] x) => (float[32,32] y) { y = Add(x, w) }')
model.graph.initializer.append(numpy_helper.from_array(np.full((32, 32), 9, np.float32), "w"))
def killed(f, data):
    f.write(b"half")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
model_io._write = killed
model_io.save_model(model, sys.argv[1], external_data=sys.argv[2] == "external")
"""


@pytest.mark.parametrize("external", [False, True])
def test_the_temporaries_of_a_killed_save_are_removed_by_the_next_save(tmp_path, external):
    path = tmp_path / "m.onnx"
    save_model(add_model(1), path, external_data=external)
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    how = "external" if external else "inline"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(path), how], env=env, stderr=subprocess.PIPE
    )
    _, err = child.communicate(timeout=120)
    assert child.returncode == -9, err.decode()
    (left,) = [p for p in tmp_path.iterdir() if p.name not in before]
    assert left.name.startswith(f".graphopt-{child.pid}-")
    assert left.is_dir() == external  # the folder the external data was written in
    assert saved_weight(path) == 1  # the model as it was
    _age(left)
    save_model(add_model(2), path, external_data=external)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert saved_weight(path) == 2


def test_only_temporaries_whose_save_is_certainly_gone_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    made: dict[str, Path] = {}
    for key, name, when in [
        ("dead", f".graphopt-{dead}-0123456789ab-m.onnx", BEFORE),
        ("alive", f".graphopt-{alive}-0123456789ab-m.onnx", BEFORE),  # a save under way
        ("mine", f".graphopt-{os.getpid()}-0123456789ab-m.onnx", BEFORE),
        ("new", f".graphopt-{dead}-ba9876543210-m.onnx", time.time()),  # after our start
        ("old-name", ".graphopt-0123456789ab-m.onnx", BEFORE - 2 * 86400),  # before pids
        ("leading-zero", f".graphopt-0{dead}-0123456789ab-m.onnx", BEFORE),
        ("not-ours", f".graphopt-{dead}-0123456789ab", BEFORE),  # no name after the hex
        ("extraction", f".extract-{dead}-0123456789ab-m.onnx", BEFORE),
        ("data", f".graphopt-data-{dead}-0123456789ab-m.onnx.data", BEFORE),  # see below
        ("model", "kept.onnx", BEFORE),
    ]:
        made[key] = tmp_path / name
        made[key].write_bytes(b"half")
        _age(made[key], when)
    for key, name in [
        ("dead-folder", f".graphopt-{dead}-abc_1234"),
        ("alive-folder", f".graphopt-{alive}-abc_1234"),
        ("file-named-as-folder", f".graphopt-{dead}-zzzzzzzz"),
    ]:
        made[key] = tmp_path / name
        if key == "file-named-as-folder":
            made[key].write_bytes(b"")
        else:
            made[key].mkdir()
            (made[key] / "m.onnx.data").write_bytes(b"data")
        _age(made[key])
    made["link"] = tmp_path / f".graphopt-{dead}-0123456789ab-l.onnx"
    made["link"].symlink_to(made["model"])
    _age(made["link"])

    save_model(add_model(1), tmp_path / "other.onnx")
    left = {key for key, path in made.items() if os.path.lexists(path)}
    assert left == set(made) - {"dead", "dead-folder"}
    assert (tmp_path / "other.onnx").is_file()


def test_new_data_a_model_names_is_kept_until_a_save_replaces_that_model(tmp_path):
    """New external data stays under its temporary name where it cannot get its own (the
    model names it): saving another model beside it keeps it; the save that puts a model
    naming other data in its place removes it (here a killed save's: its pid is gone)."""
    location = f".graphopt-data-{_dead_pid()}-0123456789ab-m.onnx.data"
    assert_named_data_goes_with_its_model(tmp_path, location, BEFORE)


def assert_named_data_goes_with_its_model(tmp_path: Path, location: str, when: float) -> None:
    """m.onnx names its data `location` (a temporary's name), last changed at `when`: saves of
    another model beside it keep that file; the save that replaces m.onnx removes it. Also
    test_h123_old_temporaries's check, for the names from before pids."""
    path = tmp_path / "m.onnx"
    save_model(add_model(1), path, external_data=True, location=location)
    data = tmp_path / location
    _age(data, when)
    save_model(add_model(5), tmp_path / "n.onnx", external_data=True)  # another model's save
    save_model(add_model(6), tmp_path / "n.onnx")  # and an inline one
    assert data.is_file() and saved_weight(path) == 1
    save_model(add_model(2), path, external_data=True)
    assert not data.exists() and saved_weight(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.onnx",
        "m.onnx.data",
        "n.onnx",
        "n.onnx.data",
    ]


def test_data_a_save_could_not_name_goes_with_the_next_save_of_that_model(
    tmp_path, monkeypatch, caplog
):
    """The data file was replaced, the model naming it could not be put (a full disk), and
    the data could not get a name of its own either: the model names the new data under its
    temporary name (the final reader's open finding). That file stayed for good; the next
    save of the model, in this very process too, removes it once its model is in place."""
    path = tmp_path / "m.onnx"
    save_model(add_model(1), path, external_data=True)
    real_replace, real_link, real_open = os.replace, os.link, os.open
    puts = []

    def second_put_refused(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == path:
            puts.append(src)
            if len(puts) == 2:
                raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    def no_own_name(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst).name.startswith("m.onnx-"):
            raise OSError(30, "Read-only file system")
        return real_link(src, dst, *args, **kwargs)

    def no_reserved_name(file, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(file).name.startswith("m.onnx-"):
            raise OSError(30, "Read-only file system")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "replace", second_put_refused)
    monkeypatch.setattr(os, "link", no_own_name)
    monkeypatch.setattr(os, "open", no_reserved_name)
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        save_model(add_model(2), path, external_data=True)
    monkeypatch.undo()
    (kept,) = [p.name for p in tmp_path.iterdir() if p.name != "m.onnx"]
    assert kept.startswith(".graphopt-") and f"saved with its data in {kept}" in caplog.text
    assert saved_weight(path) == 2
    save_model(add_model(3), path, external_data=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    assert saved_weight(path) == 3
