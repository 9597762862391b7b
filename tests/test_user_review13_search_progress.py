"""quantize's accuracy search shows progress on stderr (session-13 fresh-user review): on
ppocr_det (--target onnxruntime, 3 images) the calibration bar reached 100 % at 11 s, then
nothing was written until the end at 35 s. Now a count of the models the search measured, in
the progress bar's style; none with --no-progress."""

from __future__ import annotations

import io
import logging
import re
import shutil
from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.quant.progress import Progress
from graphopt.realmodels import IMAGE_NAMES, fetch_model, image_paths


@pytest.fixture
def argv(tmp_path: Path) -> list[str]:
    folder = tmp_path / "calib"
    folder.mkdir()
    for path in image_paths(IMAGE_NAMES[:2]):  # astronaut.png, chelsea.png
        shutil.copy(path, folder)
    model = str(fetch_model("ppocr_det"))
    out = str(tmp_path / "q.onnx")
    return ["quantize", model, "-o", out, "--calib", str(folder), "--size", "320x320"]


@pytest.mark.realmodel
def test_the_accuracy_search_shows_its_progress(argv, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([*argv, "--target", "onnxruntime"]) == 0
    err = capsys.readouterr().err
    counts = [int(n) for n in re.findall(r"accuracy search: (\d+) models measured", err)]
    assert counts and counts[0] == 0 and counts[-1] > 1, err
    assert err.index("calibrating 2/2") < err.index("accuracy search: 0"), err


@pytest.mark.realmodel
def test_no_progress_quiets_the_search(argv, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([*argv, "--target", "onnxruntime", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "accuracy search:" not in err and "calibrating" not in err, err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_warning_is_not_written_onto_the_search_line() -> None:
    stream = _Terminal()
    bar = Progress(
        None,
        "accuracy search",
        stream,
        units=("model measured", "models measured"),
        show_start=True,
    )
    logger = logging.getLogger("graphopt.quant")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        with bar.lines_end_before_logs("graphopt.quant"):
            bar.update(0)
            bar.update(1)
            logger.warning("accuracy target not reached")
        bar.close()
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().split("\n")
    assert lines[0].startswith("\raccuracy search: 0 models measured")
    assert lines[1] == "accuracy target not reached", lines
    # the last count (1, within the 0.2 s redraw interval) on a line of its own at the end
    assert lines[2].startswith("\raccuracy search: 1 model measured,") and lines[3:] == [""]
