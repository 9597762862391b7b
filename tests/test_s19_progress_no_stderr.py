"""`graphopt.quant.progress.Progress` where the process has no stderr (closed with `2>&-`, or
pythonw: `sys.stderr` is None). Its first write raised AttributeError and failed the run:
`quantize` and `distill-targets` with their default progress bar, and inspect/check until
dc30205 special-cased them. The bar itself now draws nothing there."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.quant.progress import Progress
from graphopt.realmodels import image_paths
from tests.test_input_fuzz13 import _save, seed_conv


def test_a_bar_without_stderr_draws_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    bar = Progress(3, "calibrating", show_start=True)
    bar.update(0)
    with bar.lines_end_before_logs("graphopt"):
        for done in (1, 2, 3):
            bar.update(done)
    bar.close()
    assert bar.stream is None and not bar.drawn


@pytest.mark.realmodel
@pytest.mark.parametrize("command", ["quantize", "distill-targets"])
def test_commands_with_their_bar_run_without_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    model = _save(seed_conv(), tmp_path)
    data = tmp_path / "photos"
    data.mkdir()
    for image in image_paths()[:2]:
        shutil.copy(image, data)
    out = tmp_path / ("q.onnx" if command == "quantize" else "targets")
    flag = "--calib" if command == "quantize" else "--data"
    monkeypatch.setattr(sys, "stderr", None)
    rc = main([command, str(model), "-o", str(out), flag, str(data)])  # (the bar: default)
    monkeypatch.undo()
    assert rc == 0
    assert out.exists()
