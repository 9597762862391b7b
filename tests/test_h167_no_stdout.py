"""H167: with standard output closed (`graphopt inspect m.onnx >&-`, or pythonw: sys.stdout
is None) every command failed when it printed its report: `cli._ReportStream` called
`None.write`, an AttributeError traceback, exit 1, after the work was done (optimize had
written its model). The report is now dropped, as `print` drops it with no sys.stdout."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


@pytest.fixture
def model(tmp_path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"]), helper.make_node("Relu", ["t"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    "command",
    [["inspect"], ["inspect", "--json"], ["check"], ["bench", "--runs", "1", "--warmup", "0"]],
)
def test_a_report_without_standard_output(model, monkeypatch, command) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    assert main([*command, str(model)]) == 0


def test_optimize_without_standard_output_writes_its_model(model, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out.onnx"
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["optimize", str(model), "-o", str(out)]) == 0
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Relu"]
