"""distill-targets' report lines (one per stored tensor, on stdout) show a tensor name that is
not printable escaped, as errors do: a teacher output named 'lo\\ngits' split its line in two,
so a script reading one line per tensor read 'gits: <f4 [2, 4] -> 000_lo_gits.npy' as one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.distill import load_targets


def test_a_newline_in_an_output_name_keeps_the_report_one_line_per_tensor(
    tmp_path: Path, capsys
) -> None:
    names = ["lo\ngits", "plain"]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], [names[0]]), helper.make_node("Neg", ["x"], [names[1]])],
        "s27",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in names],
    )
    teacher = tmp_path / "teacher.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), teacher)
    data = tmp_path / "data"
    data.mkdir()
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    np.save(data / "s0.npy", x)
    out = tmp_path / "targets"
    assert main(["distill-targets", str(teacher), "--data", str(data), "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "raw   'lo\\ngits': <f4 [1, 4] -> 000_lo_gits.npy"
    assert lines[1] == "raw   plain: <f4 [1, 4] -> 001_plain.npy"
    assert len(lines) == 3 and lines[2].startswith("1/1 samples; wrote ")
    np.testing.assert_array_equal(load_targets(out)["lo\ngits"], np.maximum(x, 0))
