"""quantize and onnxruntime's own ops (session-13 fresh-user review).

- `quantize --target tensorrt --pipeline ort-fusions` wrote a model of com.microsoft
  FusedConv/QuickGelu that `check --target tensorrt` then reported 80 errors on: refused now
  (one line, exit 2), as is a tensorrt-target input that holds such ops already. The check is on
  the ops (onnxruntime's own domains, com.microsoft*), so a user pipeline YAML that writes
  them is refused the same way; other custom domains pass (a TensorRT plugin may run them).
- quantizing layout_cdla optimized with ort-fusions (98 FusedConv, 4 Conv) said "none of the 4
  Conv... reads a float activation of known type": it names the fused ops now.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest

from graphopt.api import optimize
from graphopt.cli import main
from graphopt.realmodels import IMAGE_NAMES, fetch_model, image_paths
from tests.conftest import onnxruntime_fuses_conv_hardswish

pytestmark = pytest.mark.realmodel


@pytest.fixture
def calib(tmp_path: Path) -> Path:
    folder = tmp_path / "calib"
    folder.mkdir()
    for path in image_paths(IMAGE_NAMES[:1]):  # one real photograph
        shutil.copy(path, folder)
    return folder


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_tensorrt_target_refuses_an_ort_pipeline(tmp_path, calib, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(fetch_model("ppocr_det")), "-o", str(out), "--calib", str(calib)]
    argv += ["--size", "320x320", "--no-progress", "--pipeline", "ort-fusions"]
    assert main(argv) == 2
    err = _error(capsys)
    assert "pipeline 'ort-fusions'" in err and "com.microsoft::FusedConv" in err, err
    assert not out.exists()


def test_tensorrt_target_refuses_an_input_with_fused_ops(tmp_path, calib, capsys) -> None:  # type: ignore[no-untyped-def]
    fused = tmp_path / "fused.onnx"
    onnx.save(optimize(str(fetch_model("ppocr_det")), "ort-fusions"), fused)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(fused), "-o", str(out), "--calib", str(calib), "--size", "320x320"]
    assert main([*argv, "--no-progress"]) == 2
    err = _error(capsys)
    assert "onnxruntime's own ops" in err and "quantize the original model" in err, err
    assert not out.exists()


@pytest.mark.skipif(
    not onnxruntime_fuses_conv_hardswish(),
    reason="the installed onnxruntime has no FusedConv HardSwish activation: ort-fusions leaves "
    "94 of layout_cdla's Convs unfused, and quantize quantizes them (nothing-to-quantize needs "
    "every Conv fused)",
)
def test_nothing_to_quantize_names_the_fused_ops(tmp_path, calib, capsys) -> None:  # type: ignore[no-untyped-def]
    fused = tmp_path / "fused.onnx"
    onnx.save(optimize(str(fetch_model("layout_cdla")), "ort-fusions"), fused)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(fused), "-o", str(out), "--calib", str(calib)]
    assert main([*argv, "--target", "onnxruntime", "--no-progress"]) == 2
    err = _error(capsys)
    assert "98 com.microsoft::FusedConv" in err and "quantize the original model" in err, err
    assert "reads a float activation of known type" not in err
    assert not out.exists()
