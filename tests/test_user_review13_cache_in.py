"""quantize --cache-in (session-13 fresh-user review).

- With --calib as well, the accuracy search runs on samples of the feeds, but the report said
  "0 calibration feeds": it counts the feeds read now.
- A calibration cache holds scales only: the groups the writing run kept float are quantized
  when the cache is read alone (ppocr_det: 74 nodes instead of 51 at 640x640); that is said in
  one warning line suggesting --calib.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.realmodels import IMAGE_NAMES, fetch_model, image_paths

pytestmark = pytest.mark.realmodel


@pytest.fixture
def written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], Path]:
    """(the argv start of a --cache-in run, the --calib folder), the cache written by a run on
    two real photographs whose accuracy search kept groups float."""
    folder = tmp_path / "calib"
    folder.mkdir()
    for path in image_paths(IMAGE_NAMES[1:3]):  # chelsea.png, coffee.png
        shutil.copy(path, folder)
    model = str(fetch_model("ppocr_det"))
    cache = tmp_path / "c.cache"
    argv = ["quantize", model, "-o", str(tmp_path / "q1.onnx"), "--calib", str(folder)]
    assert main([*argv, "--size", "320x320", "--cache", str(cache), "--no-progress"]) == 0
    assert "kept in float:" in capsys.readouterr().out  # the search kept groups float
    return ["quantize", model, "-o", str(tmp_path / "q2.onnx"), "--cache-in", str(cache)], folder


def test_cache_in_with_calib_counts_its_feeds(written, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    argv, folder = written
    assert main([*argv, "--calib", str(folder), "--size", "320x320", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "0 calibration feeds" not in captured.out
    assert "2 feeds read for the accuracy search's samples" in captured.out, captured.out
    assert "samples of 2 feeds from" in captured.out
    assert "holds scales only" not in caplog.text


def test_cache_in_alone_says_the_float_groups_are_not_carried(written, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    argv, _ = written
    Path(f"{argv[-1]}.graphopt.json").unlink()  # the cache alone (with it: test_cache_sidecar14)
    assert main([*argv, "--no-progress", "--report"]) == 0
    warnings = [r.getMessage() for r in caplog.records if "holds scales only" in r.getMessage()]
    assert len(warnings) == 1 and "--calib" in warnings[0], caplog.text
    assert "no feeds (no accuracy search)" in capsys.readouterr().out
