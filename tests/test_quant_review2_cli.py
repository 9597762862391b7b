"""`graphopt quantize` command-line checks (adversarial review)."""

from __future__ import annotations

import numpy as np
import onnx

from graphopt.cli import main
from tests.test_quant_api import conv_model


def test_cli_cache_on_the_input_path_is_refused(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`--cache` naming the input model overwrote the model with the cache's text (the output's
    path was refused, the input's was not)."""
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), model)
    before = model.read_bytes()
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    np.save(calib / "a.npy", rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32))
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib), "--no-progress"]
    assert main([*argv, "--cache", str(model)]) == 2
    err = capsys.readouterr().err
    assert "input model's path" in err and len(err.strip().splitlines()) == 1
    assert model.read_bytes() == before and not out.exists()


def test_cli_an_image_too_large_to_decode_is_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """PIL refuses an image over 2 x MAX_IMAGE_PIXELS with DecompressionBombError, which is no
    OSError: it ended the command with a traceback (exit 1)."""
    from PIL import Image

    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    Image.new("1", (20000, 20000)).save(calib / "huge.png")  # 400 M pixels, 49 kB
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "huge.png" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
