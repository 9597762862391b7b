"""retag_calibration_cache reads graphopt's cache as graphopt writes it: UTF-8 (tensor names
are ONNX strings, not ASCII), and still refuses bytes that are no calibration cache."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.backends.tensorrt import retag_calibration_cache
from graphopt.errors import BackendError
from graphopt.quant import cache


def test_retag_keeps_non_ascii_tensor_names(tmp_path):
    scales = {"conv_é/输出": np.float32(0.25), "x": np.float32(0.0123)}
    path = tmp_path / "calib.cache"
    cache.write(path, scales, header="TRT-8601-EntropyCalibration2")
    out = retag_calibration_cache(path.read_bytes(), "TRT-101601-EntropyCalibration2")
    header, back = cache.loads(out.decode("utf-8"))
    assert header == "TRT-101601-EntropyCalibration2"
    assert back == scales


@pytest.mark.parametrize(
    "data", [b"\x89PNG\r\n\x1a\n\xff\xfe binary", b"hello\nworld\n", b"TRT-8601-Entropy\xff"]
)
def test_retag_refuses_what_is_no_calibration_cache(data):
    with pytest.raises(BackendError, match="cannot use the calibration cache"):
        retag_calibration_cache(data, "TRT-101601-EntropyCalibration2")
