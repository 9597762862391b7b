"""`distill-targets --scale 0` is refused, as `quantize --scale 0` is.

Pixels are multiplied by the scale before --mean/--std: with 0 every photograph became one
constant image, and the teacher's targets for it were stored once per sample (exit 0), a data
set of identical rows. quantize refuses it (graphopt.quant.data); distill now does too, in the
CLI and in write_targets, before anything is stored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.distill import DistillError, write_targets
from graphopt.realmodels import PREPROCESS, image_paths


@pytest.mark.realmodel
def test_cli_refuses_scale_zero_in_one_line_and_stores_nothing(
    real_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = real_model("layout_cdla")
    photo = image_paths()[0]
    out = tmp_path / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(photo), "-o", str(out)]
    assert main([*argv, "--preset", "layout_cdla", "--scale", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "scale 0 makes every pixel 0" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.realmodel
def test_write_targets_refuses_scale_zero_and_takes_a_small_one(real_model, tmp_path: Path) -> None:
    teacher = real_model("layout_cdla")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(image_paths()[0], photos)
    options = dict(PREPROCESS["layout_cdla"], scale=0.0)
    with pytest.raises(DistillError, match="scale 0 makes every pixel 0"):
        write_targets(
            teacher, photos, tmp_path / "t0", outputs=["transpose_0.tmp_0"], preprocess=options
        )
    options["scale"] = 1e-3  # (a scale that is not 0 is taken)
    manifest = write_targets(
        teacher, photos, tmp_path / "t1", outputs=["transpose_0.tmp_0"], preprocess=options
    )
    assert manifest["complete"] and manifest["count"] == 1
