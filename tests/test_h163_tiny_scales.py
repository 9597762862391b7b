"""A TensorRT calibration cache's scale under the least scale a Q/DQ is written with
(ActivationQuant's floor, 1e-12) was raised to it by from_cache: the model's scale silently not
the cache's, and every value of the tensor quantized to 0 (x·1e-30 before a Conv: output
error 63% of its range). Now such a tensor stays float, with one warning, and has no Q/DQ.

(Calibrating the same tensor still takes the floor: tests/test_quant_review13b_bias_floor.py
expects x·1e-30 quantized at scale 1e-12.)"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from graphopt.quant import cache as cache_io
from graphopt.quant.api import quantize_with_report


def _tiny_branch() -> onnx.ModelProto:
    """y = Conv(x, w1), t = Conv(x·1e-30, w2): the second Conv reads values ~1e-30."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 3, 8, 8] x) => (float[1, 4, 8, 8] y, float[1, 4, 8, 8] t) {
            y = Conv(x, w1)
            s = Mul(x, tiny)
            t = Conv(s, w2)
        }"""
    )
    rng = np.random.default_rng(0)
    for name, shape in (("w1", (4, 3, 1, 1)), ("w2", (4, 3, 1, 1))):
        w = rng.standard_normal(shape).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(w, name))
    model.graph.initializer.append(numpy_helper.from_array(np.array(1e-30, np.float32), "tiny"))
    return model


def _feeds() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(2)]


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return sess.run(None, feed)


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "no int8 scale" in r.getMessage()
    ]


def test_a_cache_scale_under_the_floor_is_not_raised_to_it(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A TensorRT calibration cache holding 1e-33 for s (a normal float32, what TensorRT's
    calibrator measures for values ~1e-31): the Q/DQ model had 1e-12 there, no longer the
    cache's scale, every value of s rounded to 0."""
    cache = tmp_path / "calib.cache"
    scales = {"x": np.float32(0.02), "s": np.float32(1e-33)}
    cache.write_text(cache_io.dumps(scales, cache_io.header("entropy", "10.3.0")))
    model = _tiny_branch()
    with caplog.at_level("WARNING", logger="graphopt.quant"):
        q, report = quantize_with_report(
            model, None, from_cache=cache, accuracy_target=None, keep_stem=False, pipeline=False
        )
    quantized = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert quantized == {"x"}
    assert set(report.unscaled) == {"s"}
    said = _said(caplog)
    assert (
        len(said) == 1 and "'s' (cache scale 1e-33 under the least scale written, 1e-12)" in said[0]
    )
    t_ref, t_got = _run(model, _feeds()[0])[1], _run(q, _feeds()[0])[1]
    assert np.array_equal(t_ref, t_got)
