"""from_cache without graphopt's sidecar names only the reasons graphopt's own cache lacks a
scale for: NaN or infinity, or empty in every calibration feed.

8cd8dc4's message also named "under the least scale", which c8bb3a0 undid: a calibrated
tensor under the 1e-12 floor takes the floor and is written to the cache.
"""

from __future__ import annotations

import numpy as np
import onnx.parser
import pytest
from onnx import numpy_helper

from graphopt.errors import QuantizeError
from graphopt.quant.api import quantize_with_report
from graphopt.quant.cache import read

_OPTIONS = {"accuracy_target": None, "keep_stem": False, "pipeline": False}


def _model() -> onnx.ModelProto:
    """y = Conv(Conv(x, w1) + Conv(Log(x), w2), w3), and a tiny tensor t = x·1e-30 into a Conv:
    Log(0) = -inf on the second branch; t's scale is under the 1e-12 floor."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 3, 8, 8] x) => (float[1, 4, 8, 8] y, float[1, 4, 8, 8] m, float[1, 4, 8, 8] z) {
            a = Conv(x, w1)
            lx = Log(x)
            b = Conv(lx, w2)
            m = Min(b, a)
            y = Conv(a, w3)
            t = Mul(x, tiny)
            z = Conv(t, w1)
        }"""
    )
    for name, shape in (("w1", (4, 3, 1, 1)), ("w2", (4, 3, 1, 1)), ("w3", (4, 4, 1, 1))):
        w = np.linspace(-1.0, 1.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)
        model.graph.initializer.append(numpy_helper.from_array(w, name))
    model.graph.initializer.append(numpy_helper.from_array(np.float32(1e-30), "tiny"))
    return model


def _feeds() -> list[dict[str, np.ndarray]]:
    first = np.linspace(0.5, 2.0, 192, dtype=np.float32).reshape(1, 3, 8, 8)
    second = first[:, :, ::-1].copy()
    second[0, 1, 2, 3] = 0.0  # Log → -inf in feed 1
    return [{"x": first}, {"x": second}]


def test_the_missing_scale_reasons_are_those_of_graphopts_cache(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "calib.cache"
    quantize_with_report(_model(), _feeds(), cache=cache, **_OPTIONS)
    _, scales = read(cache)
    assert "lx" not in scales  # -inf: left out
    assert "t" in scales and float(scales["t"]) <= 1e-12  # under the floor: written at it
    (tmp_path / "calib.cache.graphopt.json").unlink()
    with pytest.raises(QuantizeError) as e:
        quantize_with_report(_model(), None, from_cache=cache, **_OPTIONS)
    message = str(e.value)
    assert "e.g. 'lx'" in message and "NaN or infinity" in message
    assert "empty in every calibration feed" in message
    assert "least scale" not in message  # (graphopt's cache holds such a tensor)
