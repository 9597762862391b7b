"""quantize's refusal of a preprocessing value that is not finite (or a zero std) names the flag
that gave it.

The check named '--std' whenever --std was given, else 'preprocessing spec': `--mean inf --std
58` was said as '--std: mean [inf, inf, inf] ...', and `--scale nan` (no --preprocess file at
all) as 'preprocessing spec: scale nan ...'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main
from graphopt.realmodels import image_paths


def _model(folder: Path) -> Path:
    weight = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 14, 14])],
        [weight],
    )
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--mean", "inf", "--std", "58"], "--mean: mean [inf, inf, inf] holds a NaN or an"),
        (["--scale", "nan"], "--scale: scale nan holds a NaN or an infinity"),
        (["--scale", "inf", "--std", "2"], "--scale: scale inf holds a NaN or an infinity"),
        (["--mean", "1", "--std", "0,1,1"], "--std: std [0.0, 1.0, 1.0] has a zero"),
        (["--std", "nan"], "--std: std [nan, nan, nan] holds a NaN or an infinity"),
    ],
)
def test_the_flag_that_gave_the_value_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], said: str
) -> None:
    model = _model(tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "a.png").write_bytes(image_paths(("astronaut.png",))[0].read_bytes())
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib), "--no-progress"]
    assert main([*argv, *options]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"graphopt quantize: error: {said}"), err
    assert not out.exists()


def test_a_spec_files_value_is_said_with_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "a.png").write_bytes(image_paths(("astronaut.png",))[0].read_bytes())
    spec = tmp_path / "spec.yaml"
    spec.write_text("mean: [0, .nan, 0]\n")
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib), "--no-progress"]
    assert main([*argv, "--preprocess", str(spec), "--std", "58"]) == 2
    err = capsys.readouterr().err
    assert f"error: {spec}: mean [0.0, nan, 0.0] holds a NaN" in err, err
    assert not out.exists()
