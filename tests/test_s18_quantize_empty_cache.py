"""`quantize --cache ''` skipped every check of the cache path (an empty string reads as "no
cache") and failed only after calibrating ("cannot write calibration cache: Device or resource
busy"); `--cache-in ''` calibrated as if no cache was given. Both are one line before any work."""

from __future__ import annotations

import pytest

from graphopt.cli import main
from graphopt.realmodels import fetch_model, image_paths


@pytest.mark.parametrize("flag", ["--cache", "--cache-in"])
def test_an_empty_cache_path_is_refused_before_calibrating(flag, tmp_path, capsys):
    model = fetch_model("common_det")
    out = tmp_path / "q.onnx"
    calib = str(image_paths()[0].parent)  # real photographs: the run would calibrate on them
    code = main(["quantize", str(model), "-o", str(out), "--calib", calib, flag, ""])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"graphopt quantize: error: {flag} is empty; give a file name\n"
    assert list(tmp_path.iterdir()) == []
