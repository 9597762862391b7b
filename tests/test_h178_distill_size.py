"""`distill-targets --size` beyond the largest image Pillow makes is one line.

Found by H176's review of feed reading (H178 confirmed it): for a teacher with a dynamic
H x W input, `--size 3000000000x8` reached Pillow's resize, which raised OverflowError (a
traceback, exit 1); `quantize --size` refuses it since c080700 with the same limit
(`graphopt.quant.data.image_too_large`, 2 x Image.MAX_IMAGE_PIXELS)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from graphopt.cli import main
from graphopt.realmodels import image_paths
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save


@pytest.mark.parametrize("size", ["3000000000x8", "8x100000000000000000000"])
def test_a_size_beyond_the_largest_image_is_refused_before_resizing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str
) -> None:
    model = seed_conv()
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "H", "W"
    teacher = _save(model, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(image_paths()[0], data / "a.png")
    out = tmp_path / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out), "--size", size]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"a.png: a {size} image is too large (" in err, err
    assert "pixels, more than Pillow's limit for any image, 178,956,970); give a smaller" in err
    assert not out.exists()


def test_a_size_under_the_limit_still_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = seed_conv()
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "H", "W"
    teacher = _save(model, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(image_paths()[0], data / "a.png")
    out = tmp_path / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out)]
    assert main([*argv, "--size", "24x40", "--no-progress"]) == 0
    stored = [np.load(p) for p in out.glob("*.npy")]
    assert stored and all(a.shape[2:] == (24, 40) for a in stored)
