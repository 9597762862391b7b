"""write_targets(preprocess=...) is checked as distill-targets checks its image flags, before
anything is made. Through the Python API a std with a zero or a scale or mean that is no finite
number made NaN pixels, and the teacher's NaN targets were stored (exit 0; the CLI refuses
--std 0, --scale inf); a mean or std of one number (std=0.5) was numpy's IndexError at the first
image, and an unknown option (sizes=) a TypeError. One number is now taken for mean and std, a
size of whole floats as integers, and an option given as None as its default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from graphopt.distill import DistillError, load_targets, write_targets


def _mean_teacher() -> onnx.ModelProto:
    """y = the mean of each channel of a 3x8x8 image."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        "s27",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "gray128.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    ("preprocess", "said"),
    [
        ({"std": 0.0}, "preprocess std [0.0] has a zero (pixels are divided by it)"),
        ({"std": (1, 0, 1)}, "preprocess std [1.0, 0.0, 1.0] has a zero"),
        ({"scale": float("inf")}, "preprocess scale must be a finite number, got inf"),
        ({"mean": float("nan")}, "preprocess mean must be 1 or 3 finite numbers, got nan"),
        ({"mean": (1, 2)}, "preprocess mean must be 1 or 3 finite numbers, got (1, 2)"),
        ({"scale": "1/255"}, "preprocess scale must be a finite number, got '1/255'"),
        ({"size": "8x8"}, "preprocess size must be (H, W), two whole numbers >= 1, got '8x8'"),
        ({"sizes": (8, 8)}, "preprocess has no option 'sizes'; its options: size, mean, std"),
    ],
)
def test_bad_image_options_are_refused_before_anything_is_made(
    tmp_path: Path, image: Path, preprocess: dict, said: str
) -> None:
    with pytest.raises(DistillError) as caught:
        write_targets(_mean_teacher(), image, tmp_path / "t", preprocess=preprocess)
    assert str(caught.value).startswith(said)
    assert not (tmp_path / "t").exists()


def test_one_number_whole_floats_and_none_are_taken(tmp_path: Path, image: Path) -> None:
    options = {"mean": 0.25, "std": 0.25, "size": (8.0, 8), "pad_value": None}
    write_targets(_mean_teacher(), image, tmp_path / "t", preprocess=options)
    y = load_targets(tmp_path / "t")["y"]
    np.testing.assert_allclose(y, [[(128 / 255 - 0.25) / 0.25] * 3], rtol=1e-5)
    # the same options resume (a rerun of the complete folder)
    again = write_targets(_mean_teacher(), image, tmp_path / "t", preprocess=options)
    assert again["complete"]
