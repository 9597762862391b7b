"""`build --int8 --calib DIR` where DIR cannot be listed, or its entries not looked at.

Found by H176's review of feed reading (H178 confirmed it): `graphopt.commands.build`'s
`calibration_files` let the PermissionError of `Path.iterdir` / `Path.is_file` out, a
traceback and exit 1, where `quantize --calib` says one line. The tests run as root, which
permissions do not stop, so the operating system's refusal is simulated."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.realmodels import image_paths
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save


@pytest.mark.parametrize("method", ["iterdir", "stat"])
def test_a_calib_folder_that_cannot_be_read_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
) -> None:
    model = _save(seed_conv(), tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    real = getattr(Path, method)

    def denied(self: Path, *args: object, **kwargs: object) -> object:
        if self == (calib if method == "iterdir" else calib / "a.png"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    if method == "stat":  # listed, but no entry can be looked at (no search permission)
        monkeypatch.setattr(Path, "stat", lambda self, *a, **k: denied(self, *a, **k))
        monkeypatch.setattr(Path, "iterdir", lambda self: iter([calib / "a.png"]))
    else:
        monkeypatch.setattr(Path, "iterdir", denied)
    plan = tmp_path / "m.plan"
    argv = ["build", str(model), "-o", str(plan), "--int8", "--calib", str(calib)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"graphopt build: error: --calib {calib}: cannot read calibration folder: Permission denied"
    )
    assert not plan.exists()


def test_an_opt_shape_beyond_the_largest_image_is_refused_before_resizing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Calibration images are resized to the --shapes opt H x W: 3000000000x8 raised Pillow's
    OverflowError (a traceback, exit 1), as quantize --size did before c080700."""
    model = seed_conv()
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "H", "W"
    path = _save(model, tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    plan = tmp_path / "m.plan"
    argv = ["build", str(path), "-o", str(plan), "--int8", "--calib", str(calib)]
    assert main([*argv, "--shapes", "x:1x3x3000000000x8"]) == 2
    assert capsys.readouterr().err.strip() == (
        "graphopt build: error: --shapes x:1x3x3000000000x8: calibration images resized to "
        "it: a 3000000000x8 image is too large (24,000,000,000 pixels, more than Pillow's "
        "limit for any image, 178,956,970); give a smaller opt shape or .npy/.npz feeds"
    )
    assert not plan.exists()
