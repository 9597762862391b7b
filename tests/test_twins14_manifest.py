"""A distillation manifest is read by `quant.cache.read_text_file` (regular files only, a size
limit, UTF-8), not by a copy of it in `distill.read_manifest`: the messages name the file as
a distillation manifest and say what it is (a folder), as a calibration cache's do."""

from __future__ import annotations

import os

import pytest

from graphopt.distill import DistillError, load_targets


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.mkdir(), "it is a folder"),  # was "is not a regular file"
        (os.mkfifo, "it is not a regular file (a FIFO)"),
        (lambda p: p.write_bytes(b"\xff\xfe{}"), "not UTF-8 text (invalid start byte at byte 0)"),
        (lambda p: None, "No such file or directory"),  # was "cannot read: No such ..."
    ],
)
def test_a_manifest_that_cannot_be_read_is_named_as_one(tmp_path, make, reason):
    make(tmp_path / "manifest.json")
    with pytest.raises(DistillError) as e:
        load_targets(tmp_path)
    assert (
        str(e.value) == f"{tmp_path / 'manifest.json'}: cannot read distillation manifest: {reason}"
    )


def test_a_data_folder_whose_manifest_json_is_a_folder_is_no_targets_folder(tmp_path):
    from graphopt.distill import data_sources

    (tmp_path / "manifest.json").mkdir()
    (tmp_path / "a.npy").write_bytes(b"")
    assert [s.name for s in data_sources(str(tmp_path))] == ["a.npy"]
