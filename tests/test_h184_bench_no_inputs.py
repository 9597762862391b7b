"""bench on a model without inputs: nothing is made up, so the JSON's "synthetic" is false
(it was true, README's `"synthetic": true` read as a latency on made-up values) and a failed
run does not blame synthetic inputs there are none of (it said '; on synthetic inputs (floats
standard normal, integers 0..3): give real ones with --inputs NPZ' for a model no .npz can
feed)."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def _model(tmp_path, shape: list[int]):
    """Constant arange(6) reshaped to `shape` (a shape of another size fails at run time)."""
    data = numpy_helper.from_array(np.arange(6, dtype=np.float32))
    dims = numpy_helper.from_array(np.array(shape, np.int64))
    nodes = [
        helper.make_node("Constant", [], ["c"], value=data),
        helper.make_node("Constant", [], ["s"], value=dims),
        helper.make_node("Abs", ["s"], ["s2"]),  # (not folded at --level disable)
        helper.make_node("Reshape", ["c", "s2"], ["y"]),
    ]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [], [y])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "noinputs.onnx"
    onnx.save(m, path)
    return str(path)


def test_no_inputs_not_synthetic(tmp_path, capsys):
    argv = ["bench", _model(tmp_path, [2, 3]), "--runs", "2", "--warmup", "0", "--no-progress"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["shapes"] == {} and result["synthetic"] is False
    assert main(argv) == 0
    assert capsys.readouterr().out.endswith("samples/s (batch 1)\n")


def test_failure_without_inputs_names_no_synthetic_inputs(tmp_path, capsys):
    path = _model(tmp_path, [4])
    argv = ["bench", path, "--runs", "1", "--warmup", "0", "--no-progress", "--level", "disable"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"onnxruntime failed to run {path}: " in err and "cannot be reshaped" in err
    assert "synthetic" not in err and "--inputs NPZ" not in err and err.count("\n") == 1
