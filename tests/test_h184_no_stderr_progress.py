"""inspect and check draw a progress bar on stderr for a model of `PROGRESS_NODES` nodes or
more (H182); where there is no stderr (closed, pythonw: `sys.stderr` is None) the bar's first
write raised AttributeError and failed the run, where bench draws no bar and times the model."""

from __future__ import annotations

import sys

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.commands.inspect import PROGRESS_NODES


def _chain(tmp_path):
    n = PROGRESS_NODES  # (a 10,000-node chain: inspect ~2 s)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Relu", ["x" if i == 0 else f"t{i}"], [f"t{i + 1}"], name=f"n{i}")
        for i in range(n)
    ]
    graph = helper.make_graph(nodes, "chain", [x], [y])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "chain.onnx"
    onnx.save(m, path)
    return str(path)


@pytest.mark.parametrize("command", ["inspect", "check"])
def test_no_stderr_no_bar(tmp_path, capsys, monkeypatch, command):
    path = _chain(tmp_path)
    monkeypatch.setattr(sys, "stderr", None)
    rc = main([command, path])
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert rc == 0
    if command == "inspect":
        assert f"nodes: {PROGRESS_NODES}  " in out and "fusion groups" in out
    else:
        assert out == f"{path}: TensorRT 10.15: 0 errors, 0 warnings\n"
