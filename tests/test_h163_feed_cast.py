"""A calibration feed whose finite values the cast to the model's float type makes infinite (a
float32 feed of a float16 model, |x| > 65504) is refused, naming the input: the cast put
infinities in the model's input, which calibration then kept float or refused as "NaN or
infinity" of a tensor, with numpy's overflow warning printed on stderr."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from graphopt.errors import QuantizeError
from graphopt.quant.api import quantize_with_report


def _float16_model() -> onnx.ModelProto:
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 19]>
        g (float16[1, 3, 8, 8] x) => (float16[1, 4, 8, 8] y) {
            a = Conv(x, w1)
            r = Relu(a)
            y = Conv(r, w2)
        }"""
    )
    rng = np.random.default_rng(0)
    for name, shape in (("w1", (4, 3, 1, 1)), ("w2", (4, 4, 1, 1))):
        w = rng.standard_normal(shape).astype(np.float16)
        model.graph.initializer.append(numpy_helper.from_array(w, name))
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_feed_beyond_the_models_float_type_is_refused(dtype: type) -> None:
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(dtype)} for _ in range(2)]
    feeds[1]["x"][0, 2, 5, 5] = 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" is not said
        with pytest.raises(
            QuantizeError,
            match=r"^calibration feed 1: input 'x' holds values beyond float16's range "
            r"\(\|x\| up to 1e\+06\)",
        ):
            quantize_with_report(
                _float16_model(), feeds, target="onnxruntime", accuracy_target=None
            )


def test_a_feed_that_fits_is_cast_and_an_infinite_one_is_not_refused_by_the_cast() -> None:
    """Values within float16's range are cast as before; a feed holding an infinity already
    is not this error: the infinity is the data's (here every tensor then holds one, which is
    refused as such)."""
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32) * 1000} for _ in range(2)]
    _, report = quantize_with_report(
        _float16_model(), feeds, target="onnxruntime", accuracy_target=None
    )
    assert report.quantized_nodes and not report.non_finite
    feeds[1]["x"][0, 0, 0, 0] = np.inf
    with pytest.raises(QuantizeError, match=r"tensor 'x': calibration values contain NaN or inf"):
        quantize_with_report(_float16_model(), feeds, target="onnxruntime", accuracy_target=None)
