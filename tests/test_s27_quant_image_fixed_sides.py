"""quantize --calib images for an input that fixes one side (a text recognizer's height 48, width
free) or its batch (4) is told what --size / --batch-size it takes, before anything is run.

An input [N, 3, 48, W] without --size was 'has no fixed height and width' (its height is
fixed); with --size 32x320 each image was made 32x320 and refused by the calibration's feed
check as 'calibration feed 0: input 'x' has shape [1, 3, 32, 320], the model wants [...]',
naming neither the file nor --size; a model whose batch is fixed at 4, given images one at a
time (the default --batch-size 1), likewise ('has shape [1, 3, 32, 32], the model wants [4, 3,
32, 32]'), with no word of --batch-size 4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main
from graphopt.realmodels import image_paths


def _model(folder: Path, dims: list[int | str]) -> Path:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(0, 0.2, (4, 3, 3, 3)).astype(np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dims[0], 4, dims[2], dims[3]])],
        [weight],
    )
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _quantize(
    tmp_path: Path, dims: list[int | str], options: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, Path]:
    calib = tmp_path / "calib"
    calib.mkdir(exist_ok=True)
    for photo in image_paths(("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")):
        (calib / photo.name).write_bytes(photo.read_bytes())
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(_model(tmp_path, dims)), "-o", str(out), "--calib", str(calib)]
    code = main([*argv, "--no-progress", "--scale", "0.0039", *options])
    return code, capsys.readouterr().err, out


REC = ["N", 3, 48, "W"]


@pytest.mark.parametrize(
    ("dims", "options", "said"),
    [
        (REC, [], "input 'x' fixes only its height ("),
        (REC, [], "; give --size 48xW"),
        (["N", 3, "H", 40], [], "input 'x' fixes only its width ("),
        (REC, ["--size", "32x320"], "size 32x320: input 'x' fixes its height at 48 ("),
        (REC, ["--size", "320"], "; give --size 48x320"),
        ([4, 3, 32, 32], [], "input 'x' has a fixed batch of 4 ([4, 3, 32, 32]): images feed"),
    ],
)
def test_what_the_input_fixes_is_said(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dims: list[int | str],
    options: list[str],
    said: str,
) -> None:
    code, err, out = _quantize(tmp_path, dims, options, capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and said in err, err
    assert "calibration feed" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("dims", "options"),
    [(REC, ["--size", "48x64"]), ([4, 3, 32, 32], ["--batch-size", "4"]), (REC, ["--size", "48"])],
)
def test_the_size_and_batch_it_asks_for_quantize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dims: list[int | str], options: list[str]
) -> None:
    code, err, out = _quantize(tmp_path, dims, options, capsys)
    assert code == 0, err
    model = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
