"""bench on a model that fails on the values bench made up (an int64 input used as Reshape's
shape, fed 0..3): the error says the inputs were synthetic and how to give real ones. It
said only onnxruntime's words ("The input tensor cannot be reshaped ..."), as if the model
were broken; with real inputs the same model is timed."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.cli import main


def _reshape_model(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    s = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Reshape", ["x", "s"], ["y"])
    m = helper.make_model(
        helper.make_graph([node], "g", [x, s], [y]),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    m.ir_version = 8
    path = tmp_path / "reshape.onnx"
    onnx.save(m, path)
    return str(path)


def test_failure_on_synthetic_inputs_says_so(tmp_path, capsys):
    path = _reshape_model(tmp_path)
    assert main(["bench", path, "--runs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "onnxruntime failed to run" in err
    assert err.endswith(
        "on synthetic inputs (floats standard normal, integers 0..3): give real ones with "
        "--inputs NPZ"
    )
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.ones((2, 3), np.float32), s=np.array([3, 2], np.int64))
    argv = ["bench", path, "--runs", "2", "--no-progress", "--inputs", str(feeds)]
    assert main(argv) == 0


def test_failure_on_given_inputs_is_not_called_synthetic(tmp_path, capsys):
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.ones((2, 3), np.float32), s=np.array([4, 2], np.int64))
    argv = ["bench", _reshape_model(tmp_path), "--no-progress", "--inputs", str(feeds)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "onnxruntime failed to run" in err and "synthetic" not in err
