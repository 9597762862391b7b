"""Temporaries named before saves named them for their pid (7618498): `.graphopt-<8 characters>`
(the folder a save with external data wrote in) and `.graphopt-<12 hex>-<name>` (a file renamed
into place, a hard link to new data, or new data a model names for good). The stale-temporary
cleanup never removed them; now a day-old folder goes, and a day-old file only as new data
does: by a save of the model whose data file <name> is, once that model does not name it."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import graphopt.ir.model_io as model_io
from graphopt.ir import save_model
from tests.models_util import add_model, saved_weight
from tests.test_model_io14_stale import assert_named_data_goes_with_its_model

RECENT = model_io.STARTED - 60  # before this process started, but not a day ago
OLD = model_io.STARTED - 2 * 86400  # two days ago


def _age(path: Path, when: float) -> None:
    os.utime(path, (when, when), follow_symlinks=False)


def _folder(parent: Path, name: str, when: float) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "m.onnx.data").write_bytes(b"data")
    (folder / ".graphopt-model").write_bytes(b"half a model")
    _age(folder, when)
    return folder


def test_a_day_old_folder_from_before_pids_is_removed(tmp_path):
    old = _folder(tmp_path, ".graphopt-abc_1234", OLD)
    recent = _folder(tmp_path, ".graphopt-xyz_9876", RECENT)  # an old graphopt may write yet
    held = _folder(tmp_path, ".graphopt-held_123", OLD)
    as_file = tmp_path / ".graphopt-zzzzzzzz"  # a file, not the folder the name is for
    as_file.write_bytes(b"")
    _age(as_file, OLD)
    nine = _folder(tmp_path, ".graphopt-abc_12345", OLD)  # not tempfile's 8 characters
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)  # as a save under way holds its folder
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        save_model(add_model(1), tmp_path / "other.onnx")
    finally:
        os.close(fd)
    assert not os.path.lexists(old)
    assert {p.name for p in tmp_path.iterdir()} == {
        recent.name,
        held.name,
        as_file.name,
        nine.name,
        "other.onnx",
    }
    assert (recent / "m.onnx.data").read_bytes() == b"data"


def test_old_new_data_a_model_names_is_kept_until_a_save_replaces_that_model(tmp_path):
    """As `.graphopt-data-<pid>-...` in test_model_io14_stale: the model names the new data
    under the old temporary name (a save before pids, killed between its steps)."""
    location = ".graphopt-0123456789ab-m.onnx.data"
    assert_named_data_goes_with_its_model(tmp_path, location, OLD)


def test_an_old_temporary_file_goes_only_with_a_save_of_the_data_file_it_is_named_for(tmp_path):
    path = tmp_path / "m.onnx"
    save_model(add_model(1), path, external_data=True)
    made = {}
    for key, name, when in [
        ("old-data", ".graphopt-0123456789ab-m.onnx.data", OLD),  # a killed save's spare link
        ("recent-data", ".graphopt-ba9876543210-m.onnx.data", RECENT),  # not a day old
        ("old-model", ".graphopt-0123456789ab-m.onnx", OLD),  # a model may name it: kept
        ("not-hex", ".graphopt-0123456789ag-m.onnx.data", OLD),
    ]:
        made[key] = tmp_path / name
        made[key].write_bytes(b"half")
        _age(made[key], when)
    save_model(add_model(5), tmp_path / "n.onnx", external_data=True)  # not its data file
    save_model(add_model(6), tmp_path / "n.onnx")
    assert all(p.exists() for p in made.values())
    save_model(add_model(2), path, external_data=True)
    assert {k for k, p in made.items() if os.path.lexists(p)} == {
        "recent-data",
        "old-model",
        "not-hex",
    }
    assert saved_weight(path) == 2


def test_an_old_temporary_changed_within_a_day_is_left_whatever_else_holds(tmp_path):
    """The day is the only sign that no old graphopt still writes it: a day less a minute is
    not enough, a day and a minute is."""
    data = tmp_path / ".graphopt-0123456789ab-m.onnx.data"
    data.write_bytes(b"half")
    _age(data, time.time() - model_io.STALE_ANYWAY + 60)
    assert model_io.remove_stale_temporaries(tmp_path, "m.onnx.data", lambda _: False) == []
    _age(data, time.time() - model_io.STALE_ANYWAY - 60)
    assert model_io.remove_stale_temporaries(tmp_path, "m.onnx.data", lambda _: False) == [data]


def test_an_old_temporary_of_a_long_data_file_name_is_known_cut_or_whole(tmp_path):
    """Old saves cut <name> to 200 bytes from 4bc7093 on, and wrote it whole before."""
    name = "d" * 220
    whole = tmp_path / f".graphopt-0123456789ab-{name}"
    cut = tmp_path / f".graphopt-ba9876543210-{name[:200]}"
    other = tmp_path / f".graphopt-abcdef012345-{name[:210]}"  # neither: another file's
    for path in (whole, cut, other):
        path.write_bytes(b"half")
        _age(path, OLD)
    removed = model_io.remove_stale_temporaries(tmp_path, name, lambda _: False)
    assert sorted(removed) == sorted([whole, cut]) and other.exists()
