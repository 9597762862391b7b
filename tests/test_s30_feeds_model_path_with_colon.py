"""A model after `--shapes NAME:DIMS ...` whose path holds a ':' (a folder 'runs:3', or a
Windows drive 'C:\\m.onnx'): the parser took only values with no ':' for the model, so this one
was read as one more NAME:DIMS and the command said "the following arguments are required:
input". An existing path whose last ':' is followed by no dims is the model; a NAME:DIMS stays
one, even where a file of that name exists."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import build_parser, main


def _model(path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


@pytest.mark.parametrize(
    ("command", "rest"),
    [("optimize", ["-o", "o.onnx"]), ("bench", []), ("build", ["-o", "e.plan"]), ("check", [])],
)
def test_a_model_path_with_a_colon_after_shapes_is_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, rest: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _model(tmp_path / "runs:3" / "m.onnx")
    args = build_parser().parse_args([command, "--shapes", "x:2x3", "runs:3/m.onnx", *rest])
    assert (args.input, args.shapes) == ("runs:3/m.onnx", ["x:2x3"])


def test_a_shape_stays_a_shape_where_a_file_has_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x:2x3").write_bytes(b"")
    args = build_parser().parse_args(["check", "--shapes", "x:2x3", "m.onnx"])
    assert (args.input, args.shapes) == ("m.onnx", ["x:2x3"])


def test_check_and_optimize_run_such_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _model(tmp_path / "runs:3" / "m.onnx")
    assert main(["check", "--shapes", "x:1x3,2x3,4x3", "runs:3/m.onnx"]) == 0
    assert "runs:3/m.onnx: TensorRT" in capsys.readouterr().out
    argv = ["optimize", "--shapes", "x:2x3", "runs:3/m.onnx", "-o", "o.onnx", "--verify"]
    assert main(argv) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    assert (tmp_path / "o.onnx").is_file()
