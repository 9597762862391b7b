"""`quantize --calib`: a feed file of the wrong dtype or shape, or holding NaN, is named.

Found by an adversarial review of feed reading (H176): the calibration's check said
"calibration feed 1: input 'x' has dtype uint8, the model wants float32", leaving the user
to count sorted file names to find which file of the folder it meant."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from graphopt.cli import main
from graphopt.realmodels import image_paths, load_image, preprocess
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save


def _calib(tmp_path: Path, second: np.ndarray) -> list[str]:
    """A folder holding a real photograph (a.png) and `second` as b.npy; quantize's argv."""
    model = _save(seed_conv(), tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    np.save(calib / "b.npy", second)
    return ["quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--calib", str(calib)]


def _photo() -> np.ndarray:
    """The second photograph as seed_conv's 1x3x8x8 float32 input, pixels in 0..1."""
    return preprocess(load_image(image_paths()[1]), (8, 8), scale=1 / 255.0)


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        ((_photo() * 255).astype(np.uint8), "input 'x' has dtype uint8, the model wants float32"),
        (_photo()[0], "input 'x' has shape [3, 8, 8], the model wants [1, 3, 8, 8]"),
        (np.where(_photo() > 0.5, np.nan, _photo()), "input 'x' holds NaN"),
    ],
    ids=["uint8", "no-batch-axis", "nan"],
)
def test_the_file_at_fault_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], second: np.ndarray, problem: str
) -> None:
    argv = _calib(tmp_path, second)
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"graphopt quantize: error: {tmp_path / 'calib' / 'b.npy'}: {problem}"
    assert not (tmp_path / "q.onnx").exists()


def test_a_photograph_and_its_float32_array_still_calibrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _calib(tmp_path, _photo())
    assert main([*argv, "--no-progress"]) == 0
    assert "2 feeds from" in capsys.readouterr().out
    assert (tmp_path / "q.onnx").exists()


def test_a_batch_of_files_in_two_dtypes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--batch-size 2: a photograph (float32, 0..1) and an array of raw uint8 pixels were
    stacked by numpy's promotion into one float32 batch, and calibrated on (exit 0)."""
    argv = _calib(tmp_path, (_photo() * 255).astype(np.uint8))
    model = seed_conv()
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    _save(model, tmp_path)
    assert main([*argv, "--batch-size", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"graphopt quantize: error: {tmp_path / 'calib'}: feeds a.png..b.npy do not stack into "
        "one batch: input 'x' is float32 in a.png but uint8 in b.npy"
    )
    assert not (tmp_path / "q.onnx").exists()


def test_a_batch_of_float16_and_float32_files_calibrates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Floats of two widths are cast to the input's dtype, as a lone file's are: a photograph
    (float32) and a float16 array of another stack into one batch."""
    argv = _calib(tmp_path, _photo().astype(np.float16))
    model = seed_conv()
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    _save(model, tmp_path)
    assert main([*argv, "--batch-size", "2", "--no-progress"]) == 0
    assert "1 feed from" in capsys.readouterr().out
    assert (tmp_path / "q.onnx").exists()
