"""`graphopt quantize`: the notes quantize_with_report says once the model is made (440967f's
onnxruntime int8 kernel warning) are not the line before a failing save's error (H126): the CLI
holds quantize's warnings until the model is saved, and drops them when the save fails (a
failed run wrote nothing; its error is its one line). A run that saves says them once.

Run in a child process: the CLI's stderr as a user sees it (in pytest the root logger's
capture handler takes the records, and the CLI's logging.basicConfig adds none)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from graphopt import realmodels
from tests.test_h125_ort_int8_warning import _two_convs

# the child: an onnxruntime whose fused int8 Conv is 141 steps off, and (argv[1] == "full") a
# save that fails as on a full disk
CHILD = """
import sys
import graphopt.backends.onnxruntime as ort_backend
import graphopt.commands._common as common
from graphopt.cli import main
from graphopt.errors import SaveError

ort_backend.fused_int8_conv_error_steps = lambda: 141.0
ort_backend._fused_conv_cause = lambda: "vnni"  # microsoft/onnxruntime#26324, whatever the CPU

def full_disk(*args, **kwargs):
    raise SaveError("q.onnx: cannot write: No space left on device")

if sys.argv[1] == "full":
    common.save_output = full_disk
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def argv(tmp_path: Path) -> list[str]:
    """quantize of a two-Conv model on three photographs, target onnxruntime (the search on)."""
    model = tmp_path / "m.onnx"
    onnx.save(_two_convs(), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    for path in realmodels.image_paths(realmodels.IMAGE_NAMES[:3]):
        shutil.copy(path, calib)
    out = tmp_path / "q.onnx"
    given = ["quantize", str(model), "-o", str(out), "--calib", str(calib)]
    return [*given, "--target", "onnxruntime", "--scale", "0.00392", "--no-progress"]


def _quantize(disk: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-c", CHILD, disk, *argv],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        timeout=300,
    )


def test_a_failed_save_is_one_line_without_the_warning(argv: list[str]) -> None:
    done = _quantize("full", argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "graphopt quantize: error: q.onnx: cannot write: No space left on device"
    ], done.stderr
    assert not Path(argv[3]).exists()


def test_a_saved_run_says_the_warning_once(argv: list[str]) -> None:
    done = _quantize("ok", argv)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("microsoft/onnxruntime#26324") == 1, done.stderr
    assert "141 steps off" in done.stderr and "ORT_ENABLE_ALL" in done.stderr
    assert "onnxruntime#26324" not in done.stdout
    assert Path(argv[3]).is_file()
