"""`graphopt.quantize(model, feeds)` for a model whose input is of a type calibration cannot
feed (float8, int4, uint4: numpy has no dtype for them; bfloat16: onnxruntime's run takes no
numpy array of it): an ml_dtypes array of that type was refused by onnxruntime as "calibration
feed 0: onnxruntime failed: Numpy_type 259 can't be converted to MLDataType.", which named
neither the input nor what to do. It is now refused by the check of the feeds with the words
`quantize --calib` says (quant.data.refuse_unfeedable_inputs, shared, not copied)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.errors import QuantizeError
from graphopt.quant.collect import check_feed
from graphopt.quant.data import refuse_unfeedable_inputs

TYPES = {
    "FLOAT8E4M3FN": (TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn, 19),
    "FLOAT8E5M2": (TensorProto.FLOAT8E5M2, ml_dtypes.float8_e5m2, 19),
    "INT4": (TensorProto.INT4, ml_dtypes.int4, 21),
    "UINT4": (TensorProto.UINT4, ml_dtypes.uint4, 21),
    "BFLOAT16": (TensorProto.BFLOAT16, ml_dtypes.bfloat16, 19),
}


def _conv_model(elem: int, opset: int) -> onnx.ModelProto:
    """y = Relu(Conv(Cast(x, float32), W)), x of type `elem`."""
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
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _folder_words(elem: int) -> str:
    """What `quantize --calib` says of such an input."""
    with pytest.raises(QuantizeError) as caught:
        refuse_unfeedable_inputs([("x", elem, [1, 3, 8, 8])])
    return str(caught.value)


@pytest.mark.parametrize("given", ["own", "float32"])
@pytest.mark.parametrize("kind", sorted(TYPES))
def test_quantize_api_refuses_the_input_as_calib_does(tmp_path, kind: str, given: str) -> None:
    elem, dtype, opset = TYPES[kind]
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(elem, opset), path)
    values = np.abs(np.random.default_rng(1).standard_normal((1, 3, 8, 8))).astype(np.float32)
    feeds = [{"x": values.astype(dtype) if given == "own" else values}]
    with pytest.raises(QuantizeError) as caught:
        graphopt.quantize(str(path), feeds)
    text = str(caught.value)
    assert text == _folder_words(elem)
    assert f"input x is {kind}, which calibration cannot feed" in text
    assert "\n" not in text and "Numpy_type" not in text


def test_check_feed_refuses_before_reading_the_feed() -> None:
    model = _conv_model(TensorProto.INT4, 21)
    with pytest.raises(QuantizeError, match="input x is INT4, which calibration cannot feed"):
        check_feed(model, {}, "calibration feed 0")


def test_a_float_input_is_still_checked_and_kept() -> None:
    model = _conv_model(TensorProto.FLOAT, 19)
    x = np.ones((1, 3, 8, 8), np.float64)  # cast to the model's float32
    checked = check_feed(model, {"x": x}, "calibration feed 0")
    assert checked["x"].dtype == np.float32 and checked["x"].shape == (1, 3, 8, 8)
    with pytest.raises(QuantizeError, match="feed has no array for model input 'x'"):
        check_feed(model, {}, "calibration feed 0")
