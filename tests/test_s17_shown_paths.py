"""Paths and names a user gave, shown on one line in the errors of the calibration data
(`quant/data.py`) and of `check --shapes`, as every other error shows them (`_text.shown`): a
newline in a folder or file name made the one-line error two lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.errors import QuantizeError
from graphopt.quant.data import PreprocessSpec
from tests.models_util import one_conv_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a newline in a file name")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphopt", *args], capture_output=True, text=True, timeout=120
    )


def test_a_preprocessing_spec_that_is_no_mapping_is_named_on_one_line(tmp_path: Path):
    spec = tmp_path / "pre\nproc.yaml"
    spec.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(QuantizeError) as exc:
        PreprocessSpec.from_yaml(spec)
    assert "\n" not in str(exc.value) and "pre\\nproc.yaml" in str(exc.value)


def test_an_unreadable_npy_feed_in_a_folder_with_a_newline_is_one_line(tmp_path: Path):
    model = tmp_path / "m.onnx"
    onnx.save(one_conv_model(), model)
    calib = tmp_path / "cal\nib"
    calib.mkdir()
    (calib / "a.npy").write_bytes(b"not an array")
    np.save(calib / "b.npy", np.zeros((1, 3, 8, 8), np.float32))
    out = tmp_path / "q.onnx"
    result = _cli("quantize", str(model), "-o", str(out), "--calib", str(calib))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cal\\nib" in lines[0] and ".npy" in lines[0], result.stderr
    assert not out.exists()


def test_check_names_an_unknown_shapes_input_on_one_line(tmp_path: Path):
    model_proto = one_conv_model()
    model_proto.graph.input[0].name = "x\ny"
    model_proto.graph.node[0].input[0] = "x\ny"
    model = tmp_path / "m.onnx"
    onnx.save(model_proto, model)
    result = _cli("check", str(model), "--shapes", "z:1x3x8x8")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'x\\ny'" in lines[0], result.stderr
