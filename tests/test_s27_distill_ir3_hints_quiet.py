"""distill-targets --hints on an IR 3 teacher (its weights listed as graph inputs too) says
nothing on stderr about the internal copy the hints are exposed in: optimize() warned 'IR 3
model raised to IR 4: its 1 weights (W) are constants now, not inputs', of a model no one
sees, on every run with --hints (a successful one too), and an error after it was two lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.distill import load_targets


def _ir3_teacher() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["mm"]), helper.make_node("Relu", ["mm"], ["y"])],
        "s27",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    onnx.checker.check_model(model)
    return model


def _argv(tmp_path: Path) -> list[str]:
    teacher = tmp_path / "teacher.onnx"
    onnx.save(_ir3_teacher(), teacher)
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "s0.npy", np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32))
    return ["distill-targets", str(teacher), "--data", str(data), "--no-progress"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own: its stderr as a user sees it (log lines included)."""
    return subprocess.run(
        [sys.executable, "-m", "graphopt", *argv], capture_output=True, text=True, timeout=300
    )


def test_a_hint_of_an_ir3_teacher_runs_without_a_word(tmp_path: Path) -> None:
    out = tmp_path / "t"
    done = _run([*_argv(tmp_path), "-o", str(out), "--hints", "mm"])
    assert done.returncode == 0 and done.stderr == ""
    targets = load_targets(out)
    np.testing.assert_array_equal(targets["mm"], [[-2.0, 4.0, -6.0, 8.0]])
    np.testing.assert_array_equal(targets["y"], [[0.0, 4.0, 0.0, 8.0]])


def test_an_error_with_hints_of_an_ir3_teacher_is_one_line(tmp_path: Path) -> None:
    done = _run([*_argv(tmp_path), "-o", str(tmp_path / "t"), "--hints", "nosuch"])
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "--hints nosuch: no tensor named 'nosuch'" in err[0], err
