"""A calibrated tensor that was empty in every calibration feed has no scale: it stays float
(with one warning), instead of taking the least scale, 1e-12, which quantized every value it
held at inference to ~0. Here a second stage's rows (those a gate selects, none of them in
calibration) go through a MatMul: its output error was 58% (tensorrt) and 84% (onnxruntime)
of its range, with either method."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from graphopt.quant.api import quantize_with_report


def _second_stage() -> onnx.ModelProto:
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 3, 8, 8] x, float[4] gate) => (float[1, 4, 8, 8] y, float[N, 8] z) {
            a = Conv(x, w1)
            y = Conv(a, w2)
            flat = Reshape(a, shape)
            keep = Greater(gate, zero_f)
            idx = NonZero(keep)
            idx1 = Squeeze(idx, zero_i)
            rows = Gather<axis=0>(flat, idx1)
            z = MatMul(rows, w3)
        }"""
    )
    rng = np.random.default_rng(0)
    for name, value in (
        ("w1", rng.standard_normal((4, 3, 1, 1)).astype(np.float32)),
        ("w2", rng.standard_normal((4, 4, 1, 1)).astype(np.float32)),
        ("w3", rng.standard_normal((64, 8)).astype(np.float32)),
        ("shape", np.array([4, 64], np.int64)),
        ("zero_i", np.array([0], np.int64)),
        ("zero_f", np.array(0.0, np.float32)),
    ):
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return sess.run(None, feed)


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_a_tensor_empty_in_every_feed_stays_float(
    target: str, method: str, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    closed = -np.ones(4, np.float32)  # no row selected while calibrating
    calib = [
        {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32), "gate": closed}
        for _ in range(3)
    ]
    model = _second_stage()
    cache = tmp_path / "calib.cache"
    with caplog.at_level("WARNING", logger="graphopt.quant"):
        q, report = quantize_with_report(
            model, calib, method, cache=cache, target=target, accuracy_target=None
        )
    feed = {
        "x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32),
        "gate": np.array([1.0, -1.0, 1.0, 1.0], np.float32),
    }
    ref, got = _run(model, feed)[1], _run(q, feed)[1]
    assert ref.shape == got.shape == (3, 8)
    assert float(np.abs(ref - got).max()) < 0.05 * float(ref.max() - ref.min())
    quantized = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert "rows" not in quantized and "x" in quantized
    assert "rows:" not in cache.read_text()
    assert report.unscaled == {"rows": "empty in every calibration feed"}
    said = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "no int8 scale" in r.getMessage()
    ]
    assert len(said) == 1 and "'rows' (empty in every calibration feed)" in said[0]
