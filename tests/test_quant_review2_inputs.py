"""Overridable inputs (adversarial review): an initializer that is also a graph input is a
default the caller may override; calibration feeds that give it are calibrated with its value."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
from onnx import numpy_helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.quant.api import quantize_with_report


def overridable_matmul() -> onnx.ModelProto:
    """y = MatMul(x, w), w an input whose default (0.01 everywhere) the feeds override."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[4, 8] x, float[8, 3] w) => (float[4, 3] y) {
            y = MatMul(x, w)
        }"""
    )
    model.graph.initializer.append(numpy_helper.from_array(np.full((8, 3), 0.01, np.float32), "w"))
    return model


def test_a_fed_override_of_an_initializer_input_is_calibrated() -> None:
    """check_feed kept only the required inputs: the fed w was dropped, w calibrated at its
    default (scale 0.01/127), and the quantized model clipped every fed weight (error 0.33 of
    the output's range)."""
    rng = np.random.default_rng(0)
    feeds = [
        {
            "x": rng.standard_normal((4, 8)).astype(np.float32),
            "w": rng.standard_normal((8, 3)).astype(np.float32),
        }
        for _ in range(4)
    ]
    model = overridable_matmul()
    quantized, report = quantize_with_report(
        model, feeds, "minmax", accuracy_target=None, keep_stem=False
    )
    widest = max(float(np.abs(f["w"]).max()) for f in feeds)
    assert report.scales["w"] == np.float32(widest / 127)
    for feed in feeds:
        want = ort_run(model, feed)["y"]
        got = ort_run(quantized, feed)["y"]
        assert np.sqrt(np.mean((got - want) ** 2)) < 0.02 * np.ptp(want)


def test_an_override_left_out_of_the_feeds_calibrates_the_default() -> None:
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    _, report = quantize_with_report(
        overridable_matmul(), [{"x": x}], "minmax", accuracy_target=None, keep_stem=False
    )
    assert report.scales["w"] == np.float32(0.01 / 127)


def test_an_npz_array_overrides_an_initializer_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from graphopt.quant.data import folder_feeds

    w = np.ones((8, 3), np.float32)
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 8), np.float32), w=w, label=np.ones(1))
    (feed,) = list(folder_feeds(tmp_path, overridable_matmul()))
    assert sorted(feed) == ["w", "x"]
    np.testing.assert_array_equal(feed["w"], w)
