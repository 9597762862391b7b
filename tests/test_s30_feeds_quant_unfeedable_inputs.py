"""`quantize --calib DIR` for a model whose input is of a type numpy has no dtype for
(float8, int4, uint4) or that onnxruntime's run takes no numpy array of (bfloat16): every
.npz was read and then refused by onnxruntime as "Unexpected input data type. Actual:
(tensor(string))" (an ml_dtypes array is saved as raw bytes, '|V1'), which named neither
the input nor what to do, and an image folder was told to give .npy/.npz feeds instead. It
is one line naming the input and its type, before any file is read."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt import cli
from graphopt.errors import QuantizeError
from graphopt.quant.data import folder_feeds

TYPES = {
    "FLOAT8E4M3FN": (TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn, 19),
    "INT4": (TensorProto.INT4, ml_dtypes.int4, 21),
    "UINT4": (TensorProto.UINT4, ml_dtypes.uint4, 21),
    "BFLOAT16": (TensorProto.BFLOAT16, ml_dtypes.bfloat16, 19),
}


def _conv_model(path: Path, elem: int, opset: int) -> None:
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("Conv", ["xf", "W"], ["c"]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", elem, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        [numpy_helper.from_array(weight, "W")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)


@pytest.mark.parametrize("saved_as", ["own", "float32"])
@pytest.mark.parametrize("kind", sorted(TYPES))
def test_quantize_names_an_input_calibration_cannot_feed(
    tmp_path, capsys, kind: str, saved_as: str
) -> None:
    elem, dtype, opset = TYPES[kind]
    model, out, calib = tmp_path / "m.onnx", tmp_path / "q.onnx", tmp_path / "calib"
    _conv_model(model, elem, opset)
    calib.mkdir()
    values = np.abs(np.random.default_rng(1).standard_normal((1, 3, 8, 8))).astype(np.float32)
    np.savez(calib / "0.npz", x=values.astype(dtype) if saved_as == "own" else values)
    assert cli.main(["quantize", str(model), "-o", str(out), "--calib", str(calib)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"input x is {kind}, which calibration cannot feed" in err, err
    assert "tensor(string)" not in err
    assert not out.exists()


def test_an_image_folder_is_not_told_to_give_arrays_instead(tmp_path) -> None:
    from PIL import Image

    model = tmp_path / "m.onnx"
    _conv_model(model, TensorProto.FLOAT8E4M3FN, 19)
    pixels = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    with pytest.raises(QuantizeError, match=r"^input x is FLOAT8E4M3FN, which calibration"):
        folder_feeds(tmp_path, onnx.load(model))


def test_a_float_input_is_still_fed(tmp_path) -> None:
    model = tmp_path / "m.onnx"
    _conv_model(model, TensorProto.FLOAT, 19)
    values = np.ones((1, 3, 8, 8), np.float32)
    np.savez(tmp_path / "0.npz", x=values)
    feeds = folder_feeds(tmp_path, onnx.load(model))
    np.testing.assert_array_equal(feeds[0]["x"], values)
