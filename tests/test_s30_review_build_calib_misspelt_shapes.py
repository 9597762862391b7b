"""build --int8 --calib DIR --shapes NAME:DIMS where NAME is no input of the model (a typo:
'X' for 'x'): the calibration image size was worked out first and took the input for one
without --shapes, "input 'x' has a dynamic size: give --shapes x:1x3xHxW for calibration",
where --shapes had been given. 30143be made calibration_feeds refuse a profile the build
refuses, but after the image size; it now comes first, and says what `graphopt check` says."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.realmodels import image_paths


def _argv(tmp_path: Path, *shapes: str) -> list[str]:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    out = tmp_path / "m.plan"
    return [
        "build",
        str(model),
        "-o",
        str(out),
        "--int8",
        "--calib",
        str(calib),
        "--shapes",
        *shapes,
    ]


def test_a_misspelt_input_name_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_argv(tmp_path, "X:1x3x8x8")) == 2
    assert capsys.readouterr().err.strip() == (
        "graphopt build: error: --shapes names X, which the model does not have (inputs: x)"
    )
    assert not (tmp_path / "m.plan").exists()


def test_a_rank_the_input_contradicts_is_said_as_check_says_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_argv(tmp_path, "x:1x3x8")) == 2
    err = capsys.readouterr().err.strip()
    assert err == "graphopt build: error: --shapes x: rank 3 does not match the model's rank 4"
