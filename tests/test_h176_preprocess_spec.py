"""`quantize --preprocess spec.yaml`: a size that is no whole number is refused.

Found by an adversarial review of feed reading (H176): int() read `size: [1.5, 2]` as 1x2 and
`size: [true, 3]` as 1x3 without a word, and `size: [.inf, 640]` raised OverflowError (a
traceback, exit 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant.data import PreprocessSpec
from graphopt.realmodels import image_paths
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save


@pytest.mark.parametrize("size", ["[1.5, 2]", "[true, 3]", "[.inf, 640]", "[640, .nan]"])
def test_a_size_that_is_no_whole_number_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"size: {size}\nscale: 0.00392\n")
    with pytest.raises(QuantizeError, match=r"size needs whole numbers \[H, W\], got "):
        PreprocessSpec.from_yaml(spec)
    model = _save(seed_conv(), tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib), "--preprocess"]
    assert main([*argv, str(spec), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{spec}: size needs whole numbers" in err, err
    assert not out.exists()


def test_whole_sizes_still_read(tmp_path: Path) -> None:
    for text, want in (
        ("[640, 480]", (640, 480)),
        ("[640.0, 480.0]", (640, 480)),
        ("320", (320, 320)),
    ):
        spec = tmp_path / "spec.yaml"
        spec.write_text(f"size: {text}\n")
        assert PreprocessSpec.from_yaml(spec).size == want


@pytest.mark.parametrize("size", ["3000000000x8", "100000000000000000000x8"])
def test_a_size_beyond_the_largest_image_is_refused_before_resizing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str
) -> None:
    """A dynamic H x W input: Pillow's resize raised OverflowError (a traceback) for a side of
    2^31 or more; 40000x40000 was killed by the kernel, out of memory (not run here)."""
    model = seed_conv()
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "H", "W"
    path = _save(model, tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(path), "-o", str(out), "--calib", str(calib), "--size", size]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"a.png: a {size} image is too large (" in err, err
    assert "pixels, more than Pillow's limit for any image, 178,956,970); give a smaller" in err
    assert not out.exists()
