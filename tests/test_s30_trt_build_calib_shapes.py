"""`build --int8 --calib DIR --shapes ...` where the profile contradicts the model's input.

Calibration images were resized to the --shapes opt shape whatever the model declared: a 2-D
or 3-D input given --shapes x:1x3x8x8 (or a fixed 8x8 input given 16x16) had every image
decoded and made into 1x3xHxW feeds, and only TensorRT's build, after parsing, said the rank
or dim did not match (or, without TensorRT, nothing did). `graphopt check` refuses such a
profile; build now says the same before reading a single image. And a scalar input (dims
()) was said to have 'a dynamic size' and told to give --shapes x:1x3xHxW."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.realmodels import image_paths


def _relu(tmp_path: Path, dims: list[object] | None) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _build(tmp_path: Path, model: Path, *shapes: str) -> list[str]:
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    argv = ["build", str(model), "-o", str(tmp_path / "m.plan"), "--int8", "--calib", str(calib)]
    return argv + (["--shapes", *shapes] if shapes else [])


@pytest.mark.parametrize(
    ("dims", "spec", "said"),
    [
        (["N", 8], "x:1x3x8x8", "--shapes x: rank 4 does not match the model's rank 2"),
        (["N", 3, 8], "x:1x3x8x8", "--shapes x: rank 4 does not match the model's rank 3"),
        ([1, 3, 8, 8], "x:1x3x16x16", "--shapes x: axis 2 is fixed to 8 in the model, not 16"),
    ],
)
def test_a_profile_the_model_contradicts_is_refused_before_the_images_are_read(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    dims: list[object],
    spec: str,
    said: str,
) -> None:
    decoded: list[object] = []
    monkeypatch.setattr("graphopt.realmodels.load_image", lambda p: decoded.append(p))
    argv = _build(tmp_path, _relu(tmp_path, dims), spec)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"graphopt build: error: {said}"
    assert decoded == []
    assert not (tmp_path / "m.plan").exists()


def test_a_scalar_input_is_said_to_take_no_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_build(tmp_path, _relu(tmp_path, []))) == 2
    assert capsys.readouterr().err.strip() == (
        "graphopt build: error: input 'x' is a scalar: calibration images make 1x3xHxW "
        "tensors; give .npy/.npz feeds"
    )


def test_an_input_of_unknown_rank_is_still_asked_for_a_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Control: no shape declared at all (passes on the parent too)."""
    assert main(_build(tmp_path, _relu(tmp_path, None))) == 2
    assert capsys.readouterr().err.strip() == (
        "graphopt build: error: input 'x' has a dynamic size: give --shapes x:1x3xHxW for "
        "calibration"
    )
