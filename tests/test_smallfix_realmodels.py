"""realmodels.load_image on images that are not 8-bit: high bit-depth grey images are
scaled to 0..255 (not clipped at 255), and an oversized image is the one-line LoadError any
unreadable image gives."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from graphopt.errors import LoadError
from graphopt.realmodels import load_image

# A horizontal ramp over the full 16-bit range: column j holds round(j * 65535 / 255).
RAMP16 = np.tile(np.round(np.arange(256) * 65535 / 255).astype(np.uint16), (4, 1))


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "ramp16.png"
    Image.fromarray(RAMP16).save(path)
    assert Image.open(path).mode.startswith("I;16")
    rgb = load_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 256, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.tile(np.arange(256, dtype=np.uint8), (4, 1)))
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_32bit_integer_image_holding_16bit_samples_is_scaled(tmp_path):
    path = tmp_path / "ramp32.tif"
    Image.fromarray(RAMP16.astype(np.int32)).save(path)
    assert Image.open(path).mode == "I"
    rgb = load_image(path)
    np.testing.assert_array_equal(rgb[..., 1], np.tile(np.arange(256, dtype=np.uint8), (4, 1)))


def test_float_image_in_unit_range_is_scaled(tmp_path):
    path = tmp_path / "rampf.tif"
    Image.fromarray((RAMP16 / 65535).astype(np.float32)).save(path)
    assert Image.open(path).mode == "F"
    rgb = load_image(path)
    np.testing.assert_array_equal(rgb[..., 0], np.tile(np.arange(256, dtype=np.uint8), (4, 1)))


def test_float_image_in_byte_range_is_kept(tmp_path):
    path = tmp_path / "bytef.tif"
    Image.fromarray(np.tile(np.arange(256, dtype=np.float32), (4, 1))).save(path)
    rgb = load_image(path)
    np.testing.assert_array_equal(rgb[..., 0], np.tile(np.arange(256, dtype=np.uint8), (4, 1)))


def test_integer_image_beyond_16bit_is_refused(tmp_path):
    path = tmp_path / "wide.tif"
    Image.fromarray(np.array([[0, 1 << 20]], dtype=np.int32)).save(path)
    with pytest.raises(LoadError, match=r"wide\.tif: .*values 0\.\.1048576"):
        load_image(path)


def test_decompression_bomb_is_a_load_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 px > 2 × 100: a "bomb"
    with pytest.raises(LoadError, match=r"big\.png: cannot decode image: .*exceeds limit"):
        load_image(path)


def test_corrupt_image_message_unchanged(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"not a png")
    with pytest.raises(LoadError, match=r"bad\.png: cannot decode image: "):
        load_image(path)
