"""distill-targets on a teacher that fixes one side of its image input (a text recognizer:
[1, 1, 64, W]) is told the size it takes before any image is resized: --size 32x256 made every
image 32x256 and onnxruntime refused it ('Got: 32 Expected: 64'), and without --size the
input was said to have 'no static H×W', its height fixed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.realmodels import image_paths


def _setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(the teacher, a folder with one photograph, the targets folder to write)."""
    teacher = tmp_path / "t.onnx"
    _recognizer(teacher)
    data = tmp_path / "photos"
    data.mkdir()
    (data / "a.png").write_bytes(image_paths()[0].read_bytes())
    return teacher, data, tmp_path / "targets"


def _recognizer(path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2], keepdims=0)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64, "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "w"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.realmodel
@pytest.mark.parametrize(
    ("size", "said"),
    [
        (
            ["--size", "32x256"],
            "size 32x256: input 'x' fixes its height at 64 ([1, 1, 64, 'w']); give --size 64x256",
        ),
        (
            [],
            "the model input fixes only its height ([1, 1, 64, 'w']); give a size to resize to (--size 64xW)",
        ),
    ],
)
def test_a_size_the_input_cannot_take_is_refused_before_resizing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], size: list[str], said: str
) -> None:
    teacher, data, out = _setup(tmp_path)
    assert main(["distill-targets", str(teacher), "--data", str(data), "-o", str(out), *size]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (after the progress bar's line)
    assert "Traceback" not in err and last.endswith(said), err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.realmodel
def test_the_size_it_takes_runs(tmp_path: Path) -> None:
    teacher, data, out = _setup(tmp_path)
    assert (
        main(
            [
                "distill-targets",
                str(teacher),
                "--data",
                str(data),
                "-o",
                str(out),
                "--size",
                "64x96",
            ]
        )
        == 0
    )
    (stored,) = [p for p in out.iterdir() if p.suffix == ".npy"]
    assert np.load(stored).shape == (1, 1, 96)
