"""A model whose own FP32 outputs hold infinity or NaN (a Div by zero, a Log of negatives) on
the calibration data: quantize's accuracy search let numpy's RuntimeWarnings through ('invalid
value encountered in reduce' from the feeds' spread, 'in scalar multiply' from the search's
prediction at an infinite error: two lines of source on the CLI's stderr beside its one-line
report), and `most_varied`, which picks the feed the `local` ranking measures on, made every
feed's spread NaN where an output held an infinity, so the first feed won whatever the others
held. Now both read the finite values (as `samples.output_spread` does) and no warning escapes;
the search's result is as before (the error is infinite: the quantized model's infinities and
NaN fall elsewhere)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphopt.quant.api import quantize_with_report
from graphopt.quant.sensitivity import most_varied

F = onnx.TensorProto.FLOAT


def _model(head: str) -> onnx.ModelProto:
    """x → Conv → Relu → Conv → c, then y = c / 0 ('Div') or log(c) ('Log')."""
    rng = np.random.default_rng(0)
    tail = (
        helper.make_node("Div", ["c", "zero"], ["y"], name="head")
        if head == "Div"
        else helper.make_node("Log", ["c"], ["y"], name="head")
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv1"),
            helper.make_node("Relu", ["a"], ["r"], name="relu"),
            helper.make_node("Conv", ["r", "w2"], ["c"], pads=[1, 1, 1, 1], name="conv2"),
            tail,
        ],
        "g",
        [helper.make_tensor_value_info("x", F, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", F, [1, 4, 8, 8])],
        [
            numpy_helper.from_array(rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32), "w2"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _feeds() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.normal(0, 1, (1, 4, 8, 8)).astype(np.float32)} for _ in range(4)]


@pytest.mark.parametrize("head", ["Div", "Log"])
@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_no_runtime_warning_escapes_the_search(head: str, target: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, report = quantize_with_report(_model(head), _feeds(), target=target, keep_stem=False)
    said = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught]
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], said
    assert report.error == float("inf")  # as before: the search cannot meet the target


def test_cli_stderr_holds_no_runtime_warning(tmp_path) -> None:
    """In a process of its own: pytest records warnings instead of printing them."""
    path, out, calib = tmp_path / "m.onnx", tmp_path / "q.onnx", tmp_path / "calib"
    onnx.save(_model("Div"), path)
    calib.mkdir()
    for i, feed in enumerate(_feeds()):
        np.save(calib / f"{i}.npy", feed["x"])
    argv = ["quantize", str(path), "-o", str(out), "--calib", str(calib), "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", *argv, "--no-keep-stem"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr and "encountered" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "accuracy target 0.04 not reached" in lines[0], done.stderr


def test_most_varied_reads_the_finite_values() -> None:
    flat_with_inf = {"y": np.array([np.inf, 0.0, 0.1], np.float32)}
    varied = {"y": np.array([0.0, 5.0, -5.0], np.float32)}
    assert most_varied([flat_with_inf, varied]) == 1
    assert most_varied([varied, flat_with_inf]) == 0
    with_nan = {"y": np.array([np.nan, 0.0, 0.1], np.float32)}
    assert most_varied([with_nan, varied]) == 1
    all_finite = [{"y": np.array([0.0, 0.1], np.float32)}, varied]
    assert most_varied(all_finite) == 1  # (as before)
