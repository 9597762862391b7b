"""`bench`'s result is one line on stdout whatever its inputs are named.

The line names the timed inputs' shapes by input name, written as it is: an input named
'a\\nb' (valid ONNX) split the result in two lines ("synthetic inputs a" / "b 1x3"); the
model's path beside it was shown quoted. Now the name is shown as the path is."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _relu(path: Path, name: str) -> str:
    graph = helper.make_graph(
        [helper.make_node("Relu", [name], ["y"])],
        "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return str(path)


def _bench(path: str, *flags: str) -> list[str]:
    return ["bench", path, "--runs", "1", "--warmup", "0", "--no-progress", *flags]


def test_an_input_name_with_a_newline_keeps_the_result_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_bench(_relu(tmp_path / "m.onnx", "a\nb"))) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.rstrip("\n").endswith("synthetic inputs 'a\\nb' 1x3")


def test_json_keeps_the_name_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """(control: passes on the parent too)"""
    assert main(_bench(_relu(tmp_path / "m.onnx", "a\nb"), "--json")) == 0
    assert json.loads(capsys.readouterr().out)["shapes"] == {"a\nb": [1, 3]}


def test_a_printable_name_is_shown_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(control: passes on the parent too)"""
    assert main(_bench(_relu(tmp_path / "m.onnx", "input:0"))) == 0
    assert capsys.readouterr().out.rstrip("\n").endswith("synthetic inputs input:0 1x3")
