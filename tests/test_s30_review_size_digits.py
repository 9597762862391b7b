"""quantize's and distill's --size HxW (and a preprocess spec's "size" string:
quant.data.parse_size) were read with int(), which took '1_0' as 10, '+8', and other scripts'
digits ('８'): a size nobody wrote, where --shapes (c443124) and merge --macs-shape (5301c63)
now take ASCII digits only. A size is now ASCII decimal digits, one line otherwise."""

from __future__ import annotations

import shutil

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant.data import parse_size
from graphopt.realmodels import image_paths


@pytest.mark.parametrize("text", ["1_0x8", "+8x8", "８x8", "8x٨", "8x8x", "x8", "-8x8"])
def test_a_size_of_other_than_ascii_digits_is_refused(text: str) -> None:
    with pytest.raises(QuantizeError, match="is not HxW"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "size"), [("640x480", (640, 480)), ("320", (320, 320)), (" 64 X 32 ", (64, 32))]
)
def test_a_size_of_digits_is_read(text: str, size: tuple[int, int]) -> None:
    """Control (passes on the parent too)."""
    assert parse_size(text) == size


def test_quantize_says_it_in_one_line(tmp_path, capsys) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(image_paths()[0], calib / "a.png")
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib)]
    assert main([*argv, "--size", "1_0x8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'1_0x8' is not HxW" in err
    assert not out.exists()
