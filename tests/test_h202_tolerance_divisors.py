"""merge --tolerance shares only weights whose change moves the output about as much.

A tolerance T identifies float weights within T of their largest magnitude. For a
BatchNormalization variance and the divisor of a Div after a Conv the output moves by the
change relative to each element, not to the largest one: a variance of 1e-5 beside one of 1.0
read as 9e-4 (a change of 9e-4 <= T = 1e-3) scaled that channel by 6.7x. layout_cdla's BN
variances span 5.6e-45..0.12 within one layer: with every variance moved by up to 0.9 T of its
layer's largest, the fine-tuned task's outputs moved by 264% of their largest value (its Conv
weights moved alike: 4%). Both are compared bitwise now; the scale, bias and mean of a
BatchNormalization and a Div's numerator still share within the tolerance.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.multitask import merge_with_report
from graphopt.multitask.hashing import weight_tensors
from tests.fusion_models import run_at

RNG = np.random.default_rng(202)
X = RNG.standard_normal((1, 2, 4, 4)).astype(np.float32)
W = RNG.standard_normal((2, 2, 1, 1)).astype(np.float32)


def _conv_then(op: str, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """x -> Conv(W) -> `op` reading the constants `values` (BN: scale, bias, mean, var)."""
    inits = [numpy_helper.from_array(W, "W")]
    inits += [numpy_helper.from_array(v, k) for k, v in values.items()]
    if op == "BatchNormalization":
        node = helper.make_node(op, ["c", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-5)
    else:
        node = helper.make_node(op, ["c", "d"], ["y"])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"]), node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _bn(var: list[float], mean: list[float] | None = None) -> onnx.ModelProto:
    f = np.float32
    return _conv_then(
        "BatchNormalization",
        {
            "scale": np.ones(2, f),
            "bias": np.zeros(2, f),
            "mean": np.array(mean or [0.1, 0.2], f),
            "var": np.array(var, f),
        },
    )


def _merged_task_output(a: onnx.ModelProto, b: onnx.ModelProto) -> tuple[np.ndarray, int]:
    merged, report = merge_with_report([a, b], prefixes=["a_", "b_"], tolerance=1e-3)
    return run_at(merged, {"x": X}, "disable")["b_y"], report.shared_params


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (_bn([1.0, 1e-5]), _bn([1.0, 9e-4])),
        (
            _conv_then("Div", {"d": np.array([1.0, 1e-4], np.float32).reshape(1, 2, 1, 1)}),
            _conv_then("Div", {"d": np.array([1.0, 9e-4], np.float32).reshape(1, 2, 1, 1)}),
        ),
    ],
    ids=["batchnorm-variance", "div-divisor"],
)
def test_tolerance_does_not_share_a_variance_or_divisor_that_rescales_a_channel(
    first: onnx.ModelProto, second: onnx.ModelProto
) -> None:
    own = run_at(second, {"x": X}, "disable")["y"]
    got, shared = _merged_task_output(first, second)
    # the second task reads its own variance (divisor): its output is its model's
    np.testing.assert_array_equal(got, own)
    assert shared == W.size + (6 if first.graph.node[1].op_type == "BatchNormalization" else 0)


def test_tolerance_still_shares_batchnorm_scale_bias_and_mean_and_a_numerator() -> None:
    bn_a = _bn([1.0, 0.5], mean=[0.5, -0.25])
    bn_b = _bn([1.0, 0.5], mean=[0.5, -0.2501])  # the mean within 1e-3 of 0.5
    _, report = merge_with_report([bn_a, bn_b], tolerance=1e-3)
    assert report.shared_params == W.size + 8  # W, scale, bias, mean and var once
    assert weight_tensors(bn_a.graph) == {"W", "scale", "bias", "mean"}
    num = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Div", ["n", "c"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
        initializer=[
            numpy_helper.from_array(W, "W"),
            numpy_helper.from_array(np.ones((1, 2, 1, 1), np.float32), "n"),
        ],
    )
    assert weight_tensors(num) == {"W", "n"}
