"""Review of the calibration range probe (graphopt.quant.range_probe, collect(histograms=False)):
every range it derives must be the one measuring the activation gives (up to ∪ {0} where its
slot says so), and the minmax-quantized model must be byte-identical to the one exact min/max
tracking gives. Each test here failed before the fix it names."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.quant import api as quant_api
from graphopt.quant.collect import collect


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto] = (),  # type: ignore[assignment]
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "review", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model


def q_range(c) -> tuple[float, float] | None:  # type: ignore[no-untyped-def]
    """What the Q/DQ sees of a collector: its range widened to include 0 (None: nothing seen)."""
    if c.maximum < c.minimum:
        return None
    return min(c.minimum, 0.0), max(c.maximum, 0.0)


def assert_ranges_exact(model, tensors, data, same_scale=None, skip=()) -> None:  # type: ignore[no-untyped-def]
    ranged, _ = collect(model, tensors, data, histograms=False, same_scale=same_scale)
    exact, _ = collect(model, tensors, data, histograms=True)
    for t in tensors:
        if t not in skip:
            assert q_range(ranged[t]) == q_range(exact[t]), t


def quantized_both_ways(model, data, target) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    """graphopt.quantize(method="minmax") through the range probe, and through exact tracking."""
    out = []
    for histograms in (False, True):

        def forced(*args, histograms=histograms, **kwargs):  # type: ignore[no-untyped-def]
            kwargs["histograms"] = histograms
            return collect(*args, **kwargs)

        original = quant_api.collect
        quant_api.collect = forced
        try:
            q = graphopt.quantize(
                model, data, method="minmax", target=target, accuracy_target=None, pipeline=False
            )
        finally:
            quant_api.collect = original
        out.append(q.SerializeToString())
    return out[0], out[1]


def ones_conv(name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), name)


def silu_model() -> onnx.ModelProto:
    """c = Conv(x, 1) (a copy of x), s = σ(c), m = c·s, y = Conv(m, 0.5)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Mul", ["c", "s"], ["m"]),
        helper.make_node("Conv", ["m", "w2"], ["y"]),
    ]
    w2 = numpy_helper.from_array(np.full((1, 1, 1, 1), 0.5, np.float32), "w2")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 4])
    return make_model(nodes, [x], [y], [ones_conv("w1"), w2])


# onnxruntime's (MLAS) sigmoid is not monotone at the last bit: σ(a) > σ(b) for these a < b
# (and it exceeds 1: σ(17.482065) = 1.0000001 while σ(40) = 1), so σ(max x) is not max σ(x),
# nor is max x·σ(max x) the max of x·σ(x) (5.0001893·σ(…) > 5.00019·σ(…))
SIGMOID_NOT_MONOTONE = [[2.000003, 2.0000033], [17.000002, 17.000008], [17.482065, 40.0]]
SILU_NOT_MONOTONE = [[5.0001893, 5.00019], [17.000952, 17.000954]]


@pytest.mark.parametrize("pair", SIGMOID_NOT_MONOTONE + SILU_NOT_MONOTONE)
def test_sigmoid_and_silu_maxima_are_measured(pair: list[float]) -> None:
    x = np.linspace(-3.0, 1.0, 8).astype(np.float32)
    x[:2] = pair
    data = [{"x": x.reshape(1, 1, 2, 4)}]
    assert_ranges_exact(silu_model(), ["c", "s", "m"], data)
    ranged, exact = quantized_both_ways(silu_model(), data, "onnxruntime")
    assert ranged == exact
