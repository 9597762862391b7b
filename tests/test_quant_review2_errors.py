"""Calibration errors name where (adversarial review): a NaN or infinity in an activation is
reported with the feed and the tensor that holds it."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.errors import QuantizeError


def log_conv_model() -> onnx.ModelProto:
    """x → Log → Conv → y: Log(0) = -inf inside the model, from a finite feed."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 3, 8, 8] x) => (float[1, 4, 8, 8] y) {
            lx = Log(x)
            y = Conv(lx, w)
        }"""
    )
    w = np.random.default_rng(0).standard_normal((4, 3, 1, 1)).astype(np.float32)
    model.graph.initializer.append(numpy_helper.from_array(w, "w"))
    return model


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_a_non_finite_activation_names_the_feed_and_tensor(method: str) -> None:
    good = {"x": np.full((1, 3, 8, 8), 2.0, np.float32)}
    bad = {"x": np.full((1, 3, 8, 8), 2.0, np.float32)}
    bad["x"][0, 1] = 0.0  # Log → -inf
    with pytest.raises(QuantizeError, match=r"^calibration feed 1: tensor 'lx': .*infinity"):
        graphopt.quantize(
            log_conv_model(), [good, bad], method, accuracy_target=None, keep_stem=False
        )


@pytest.mark.parametrize("target", [float("nan"), -0.5])
def test_a_meaningless_accuracy_target_is_refused(target: float) -> None:
    """NaN ran a search whose comparisons were all false (silently no target); a negative one
    kept groups float up to the search's limit for a target no model meets."""
    feed = {"x": np.full((1, 3, 8, 8), 2.0, np.float32)}
    with pytest.raises(QuantizeError, match="accuracy_target must be 0 or more"):
        graphopt.quantize(log_conv_model(), [feed], accuracy_target=target)
