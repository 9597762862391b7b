"""H167: a pipeline, include or rule file path that names a folder (or a pipe: `-p <(...)`)
was refused as "not found", which sends a user looking for a file that is there. Now the
error says what is there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline


def test_a_folder_given_as_the_pipeline(tmp_path: Path) -> None:
    folder = tmp_path / "mine.yaml"
    folder.mkdir()
    with pytest.raises(PipelineError) as err:
        load_pipeline(folder)
    assert str(err.value) == f"{folder}: is a folder, not a pipeline file"


def test_a_folder_included(tmp_path: Path) -> None:
    (tmp_path / "sub.yaml").mkdir()
    (tmp_path / "p.yaml").write_text("passes:\n  - constant-folding\n  - include: sub.yaml\n")
    with pytest.raises(PipelineError) as err:
        load_pipeline(tmp_path / "p.yaml")
    assert str(err.value) == (
        f"{tmp_path / 'p.yaml'}:3: cannot include 'sub.yaml': {tmp_path / 'sub.yaml'} is a "
        "folder, not a pipeline file"
    )


def test_a_folder_as_a_rule_file(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").mkdir()
    (tmp_path / "p.yaml").write_text("rules: [rules.yaml]\npasses: [fuse-patterns]\n")
    with pytest.raises(PipelineError) as err:
        load_pipeline(tmp_path / "p.yaml")
    assert (
        str(err.value)
        == f"{tmp_path / 'p.yaml'}:1: rule file 'rules.yaml' is a folder, not a rule file"
    )


def test_a_pipe_as_the_pipeline(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PipelineError) as err:
        load_pipeline(fifo)
    assert str(err.value) == (
        f"{fifo}: is not a regular file (a pipe or a device); give a pipeline file"
    )


def test_a_missing_file_is_still_not_found(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as err:
        load_pipeline(tmp_path / "none.yaml")
    assert str(err.value) == f"{tmp_path / 'none.yaml'}: pipeline file not found"
