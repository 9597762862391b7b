"""Pillow's warnings while `load_image` decodes are one log line each, naming the file.

Found by H176's review of feed reading (H178 confirmed it): Pillow warns through Python's
`warnings` for a palette PNG with per-entry transparency ("Palette images with Transparency
expressed in bytes should be converted to RGBA images"), for an image of 89-179 M pixels
(DecompressionBombWarning) and for corrupt EXIF data; each printed two lines on stderr (the
source file and line, then Pillow's own `warnings.warn(` line), beside the CLI's one line. Now
the palette one is logged at debug level (harmless: every image's alpha is dropped), the others
as one warning naming the file; a warning before a decode error is dropped with the decode
(the error is the one line: a cut-short 144 M-pixel PNG said 3 lines).

Not caught: libtiff's own C messages (a damaged LZW strip prints "<file>: Using code not yet in
table." from libtiff's default handler, straight to the stderr file descriptor)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graphopt.errors import LoadError
from graphopt.realmodels import image_paths, load_image


def _load(path: Path) -> tuple[np.ndarray, list[str]]:
    """The image and the Python warnings that escaped `load_image`."""
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        image = load_image(path)
    return image, [str(w.message) for w in escaped]


def _said(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "graphopt.realmodels" and r.levelno == level
    ]


def test_a_palette_png_with_transparency_bytes_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    photo = Image.open(image_paths(("chelsea.png",))[0]).convert("RGB")
    palette = photo.quantize(16)
    path = tmp_path / "cat.png"
    palette.save(path, transparency=bytes([0, 128] + [255] * 14))
    caplog.set_level(logging.DEBUG, logger="graphopt.realmodels")
    image, escaped = _load(path)
    assert escaped == []
    assert np.array_equal(image, np.asarray(palette.convert("RGB")))
    assert _said(caplog, logging.WARNING) == []
    assert _said(caplog, logging.DEBUG) == [
        f"{path}: UserWarning: Palette images with Transparency expressed in bytes should be "
        "converted to RGBA images"
    ]


def test_an_image_past_the_decompression_bomb_warning_is_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow warns above MAX_IMAGE_PIXELS (89,478,485) and refuses above twice that; the
    limit is lowered so that a real photograph (300 x 451) lies between the two."""
    path = image_paths(("chelsea.png",))[0]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    caplog.set_level(logging.DEBUG, logger="graphopt.realmodels")
    image, escaped = _load(path)
    assert escaped == []
    assert image.shape == (300, 451, 3)
    assert _said(caplog, logging.WARNING) == [
        f"{path}: DecompressionBombWarning: Image size (135300 pixels) exceeds limit of "
        "100000 pixels, could be decompression bomb DOS attack."
    ]


def test_a_warning_before_a_decode_error_is_left_to_the_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = image_paths(("chelsea.png",))[0].read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    caplog.set_level(logging.DEBUG, logger="graphopt.realmodels")
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        with pytest.raises(LoadError, match=r"cut\.png: cannot decode image: image file is"):
            load_image(path)
    assert [str(w.message) for w in escaped] == []
    assert _said(caplog, logging.WARNING) == []


def test_corrupt_exif_is_one_line_and_the_image_loads_as_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    photo = load_image(image_paths(("chelsea.png",))[0])
    exif = Image.Exif()
    exif[0x0112] = 6
    good = tmp_path / "good.jpg"
    Image.fromarray(photo).save(good, exif=exif, quality=95)
    raw = good.read_bytes()
    at = raw.index(b"Exif\x00\x00") + 6  # the TIFF header: byte order, 42, first IFD offset
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(raw[:at] + b"MM\x00\x2a\xff\xff\xff\xff" + raw[at + 8 :])
    caplog.set_level(logging.DEBUG, logger="graphopt.realmodels")
    image, escaped = _load(bad)
    assert escaped == []
    assert image.shape == photo.shape  # no orientation read: as stored
    warned = _said(caplog, logging.WARNING)
    assert len(warned) == 1 and warned[0].startswith(f"{bad}: UserWarning: Corrupt EXIF data.")
