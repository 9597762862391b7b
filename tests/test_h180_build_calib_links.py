"""H180: `build --int8 --calib DIR` skipped a calibration file that is no regular file (a
broken link: a data set half copied; a folder named x.png) without a word, and with no file
left said only "no calibration files", where `quantize --calib` names them. It now says the
same as quantize: a warning naming them, or the names in the one-line error."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.commands.build import calibration_files
from graphopt.realmodels import image_paths
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save


def test_a_broken_link_among_calibration_images_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    os.symlink(tmp_path / "gone.jpg", calib / "b.jpg")
    os.symlink("loop.png", calib / "loop.png")
    (calib / "notes.txt").write_text("not calibration data")
    with caplog.at_level(logging.INFO, logger="graphopt"):
        assert calibration_files(calib) == [calib / "a.png"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"--calib {calib}: skipping b.jpg (a link to nothing), loop.png (a symbolic link "
        "loop): not a regular file"
    ]


def test_a_calib_folder_of_broken_links_names_them_in_its_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _save(seed_conv(), tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "sub.png").mkdir()
    os.symlink(tmp_path / "gone.npy", calib / "b.npy")
    plan = tmp_path / "m.plan"
    argv = ["build", str(model), "-o", str(plan), "--int8", "--calib", str(calib)]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"graphopt build: error: --calib {calib}: no calibration files (.npy, .npz, .png, "
        ".jpg, .jpeg, .bmp, .tif, .tiff, .webp); skipped b.npy (a link to nothing), sub.png "
        "(a folder): not a regular file"
    )
    assert not plan.exists()
