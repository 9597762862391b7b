"""`distill-targets` on a one-channel (gray) teacher refuses what quantize refuses there.

Images are fed to such a teacher as their luma, normalized with the first --mean and --std:
three different means or stds used only the first, and --bgr was ignored, both without a
word (exit 0); `quantize` refuses both ("takes one gray channel"). distill does too now; one
mean and one std are taken as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main
from graphopt.distill import load_targets
from graphopt.realmodels import image_paths, load_image, preprocess
from tests.fusion_models import run_at


def _gray_teacher(tmp_path: Path) -> Path:
    weight = np.random.default_rng(202).standard_normal((2, 1, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 30, 30])],
        initializer=[numpy_helper.from_array(weight, "W")],
    )
    path = tmp_path / "gray.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--mean", "0.1,0.2,0.3"], "takes one gray channel: give one mean (of [0.1, 0.2, 0.3]"),
        (["--std", "0.2,0.5,1"], "takes one gray channel: give one std (of [0.2, 0.5, 1.0]"),
        (["--bgr"], "takes one gray channel (the images' luma): bgr does not apply"),
    ],
)
def test_three_means_stds_or_bgr_for_a_gray_teacher_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str
) -> None:
    out = tmp_path / "targets"
    argv = ["distill-targets", str(_gray_teacher(tmp_path)), "--data", str(image_paths()[0])]
    assert main([*argv, "-o", str(out), *flags, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not out.exists()


def test_one_mean_and_std_for_a_gray_teacher_are_taken(tmp_path: Path) -> None:
    teacher = _gray_teacher(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    photo = shutil.copy(image_paths()[0], data)
    out = tmp_path / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out)]
    assert main([*argv, "--mean", "0.5", "--std", "0.25", "--no-progress"]) == 0
    options = {"scale": 1 / 255, "mean": (0.5,) * 3, "std": (0.25,) * 3, "gray": True}
    x = preprocess(load_image(photo), (32, 32), **options)  # distill's default scale: 1/255
    expected = run_at(onnx.load(teacher), {"x": x}, "disable")["y"]
    np.testing.assert_allclose(load_targets(out)["y"], expected, rtol=1e-5, atol=1e-5)
