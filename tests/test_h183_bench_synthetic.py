"""bench says when the inputs it timed are synthetic (made up: standard normal floats, small
integers), not the user's --inputs: the result line named the shapes alone, so a latency timed
on noise read as one timed on real data (values can change a model's time)."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.cli import main


def _model(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "dyn.onnx"
    onnx.save(m, path)
    return path


def test_synthetic_inputs_are_said(tmp_path, capsys):
    argv = ["bench", str(_model(tmp_path)), "--runs", "2", "--warmup", "0", "--no-progress"]
    assert main(argv) == 0
    assert capsys.readouterr().out.endswith(", synthetic inputs x 1x3x224x224\n")
    assert main([*argv, "--json", "--shapes", "x:1x3x8x8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["synthetic"] is True and result["shapes"] == {"x": [1, 3, 8, 8]}


def test_given_inputs_are_not_called_synthetic(tmp_path, capsys):
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.ones((1, 3, 8, 8), np.float32))
    argv = ["bench", str(_model(tmp_path)), "--runs", "2", "--inputs", str(feeds)]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("(batch 1), inputs x 1x3x8x8\n") and "synthetic" not in out
    assert main([*argv, "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["synthetic"] is False
