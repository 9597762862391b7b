"""`graphopt quantize` holds quantize's warnings until the model is saved (H126) and drops them
when the run saves nothing. A Ctrl-C or SIGTERM that lands once the save has renamed the model
into place, before the command marks it saved, leaves this run's model, cache and sidecar
(H221), and the one line says so, but the held warnings were dropped as for an unsaved model
(`held.release(drop=saving and not saved)`): the saved model's onnxruntime int8 kernel warning
(440967f) was never said. Now they are said before that line. An interrupt before the rename
saves nothing and still drops them (the control: its one line is all).

Run in a child process, as tests/test_h126_quantize_held_warnings.py runs it: the CLI's stderr
as a user sees it. The signal is raised from inside the save, where a timed `kill` cannot be
aimed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from graphopt import realmodels
from tests.test_h125_ort_int8_warning import _two_convs

# the child: an onnxruntime whose fused int8 Conv is 141 steps off (the warning quantize
# holds), and a save that raises argv[1] (KeyboardInterrupt, or the CLI's SIGTERM) after the
# model is renamed into place (argv[2] == "after") or before
CHILD = """
import sys
import graphopt.backends.onnxruntime as ort_backend
import graphopt.commands._common as common
from graphopt import cli

ort_backend.fused_int8_conv_error_steps = lambda: 141.0
ort_backend._fused_conv_cause = lambda: "vnni"  # microsoft/onnxruntime#26324, whatever the CPU
real_save = common.save_output
signal = KeyboardInterrupt if sys.argv[1] == "int" else cli._Terminated

def save_then_signal(model, args, **kwargs):
    if sys.argv[2] == "after":
        real_save(model, args, **kwargs)
    raise signal

common.save_output = save_then_signal
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture
def argv(tmp_path: Path) -> list[str]:
    """quantize of a two-Conv model on three photographs, target onnxruntime, with a cache."""
    model = tmp_path / "m.onnx"
    onnx.save(_two_convs(), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    for path in realmodels.image_paths(realmodels.IMAGE_NAMES[:3]):
        shutil.copy(path, calib)
    given = ["quantize", str(model), "-o", "q.onnx", "--calib", str(calib), "--cache", "c.cache"]
    return [*given, "--target", "onnxruntime", "--scale", "0.00392", "--no-progress"]


def _quantize(
    tmp_path: Path, signal: str, when: str, argv: list[str]
) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-c", CHILD, signal, when, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": root},
        timeout=300,
    )


@pytest.mark.parametrize(
    ("signal", "code", "word"), [("int", 130, "interrupted"), ("term", 143, "terminated")]
)
def test_a_signal_after_the_rename_says_the_saved_models_warnings(
    tmp_path: Path, argv: list[str], signal: str, code: int, word: str
) -> None:
    done = _quantize(tmp_path, signal, "after", argv)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"graphopt quantize: {word}; it came once q.onnx was saved"), lines
    assert done.stderr.count("microsoft/onnxruntime#26324") == 1, done.stderr
    assert "141 steps off" in done.stderr
    assert "Traceback" not in done.stderr
    model = onnx.load(tmp_path / "q.onnx")  # the model the warning is about is there
    assert any(node.op_type == "QuantizeLinear" for node in model.graph.node)
    assert (tmp_path / "c.cache").read_text().startswith("TRT-")


def test_a_signal_before_the_rename_is_its_line_alone(tmp_path: Path, argv: list[str]) -> None:
    done = _quantize(tmp_path, "int", "before", argv)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "graphopt quantize: interrupted; nothing was written\n"
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "c.cache").exists()
