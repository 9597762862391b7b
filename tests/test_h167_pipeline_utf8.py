"""H167: a pipeline file (or one it includes) that is not UTF-8 was refused as "cannot read
pipeline file: 'utf-8' codec can't decode byte 0xff in position 37: invalid start byte": a
byte position, no line. Now the error names the file and the line, as every other pipeline
error does (for an include: where it was included, then the file and its line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline


def test_a_pipeline_file_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"passes:\n  - constant-folding\n  - elim\xffinate-dead-code\n")
    with pytest.raises(PipelineError) as err:
        load_pipeline(path)
    assert str(err.value) == (f"{path}:3: not UTF-8 text: byte 0xff at column 9; save it as UTF-8")


def test_an_included_file_not_utf8_is_named_with_its_line_and_the_include(tmp_path) -> None:
    (tmp_path / "sub.yaml").write_bytes(b"# caf\xe9\npasses: [constant-folding]\n")
    (tmp_path / "p.yaml").write_text("passes:\n  - eliminate-dead-code\n  - include: sub.yaml\n")
    with pytest.raises(PipelineError) as err:
        load_pipeline(tmp_path / "p.yaml")
    assert str(err.value) == (
        f"{tmp_path / 'p.yaml'}:3: cannot read {tmp_path / 'sub.yaml'}:1: not UTF-8 text: byte "
        "0xe9 at column 6; save it as UTF-8"
    )


def test_a_utf16_file_is_refused_at_line_1(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("passes: []\n", encoding="utf-16")
    with pytest.raises(PipelineError, match=r":1: not UTF-8 text: byte 0xff at column 1"):
        load_pipeline(path)


def test_a_utf8_bom_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"\xef\xbb\xbfpasses:\n  - constant-folding\n")
    assert load_pipeline(path).pass_names() == ["constant-folding"]
