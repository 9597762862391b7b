"""inspect's text report showed a dim param as it is: a newline in one ('N\\nM', valid ONNX)
split an input's or output's line in two. A dim param is shown (`repr` where not printable) as
the names are; --json keeps it as it is."""

from __future__ import annotations

import json

import onnx
import onnx.helper as h
from onnx import TensorProto

from graphopt.cli import main


def _save(path: str) -> None:
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N\nM", 3])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N\nM", 3])],
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)


def test_dim_param_with_a_newline_stays_on_its_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "m.onnx")
    _save(path)
    assert main(["inspect", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  x: float ['N\\nM', 3]" in lines
    assert "  y: float ['N\\nM', 3]" in lines


def test_json_keeps_the_dim_param(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "m.onnx")
    _save(path)
    assert main(["inspect", "--json", path]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inputs"][0]["shape"] == ["N\nM", 3]
