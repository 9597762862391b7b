"""Review 13b: the int32-bias floor on a weight scale, |b| / (s_x·2³⁰), can pass float32.

A huge bias behind an input whose scale is ~0 (here x·1e-30 calibrated on photographs: its
scale is the 1e-12 floor) needs, for b = 1e36, a weight scale of 9.3e38: cast to float32 it
was inf, the int8 weights dequantized to 0·inf = NaN, and the channel's output was NaN
(tensorrt target, 1024 NaNs) or lost its bias (onnxruntime: its int32 bias at s_x·inf read
0·inf; error 1e36, the whole output range). A bias holding infinity did the same. Now such a
node stays float, logged with the reason; the other nodes are quantized as before, and a
bias whose floor fits float32 (1e30: 9.3e32) is still quantized.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphopt import realmodels
from graphopt.backends.onnxruntime import session
from graphopt.quant.api import quantize_with_report


def tiny_input_model(big: float) -> onnx.ModelProto:
    """x → Mul(1e-30) → conv1(w, b: b[1] = `big`) → Relu → y, and x → conv2(w2, b2) → z."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    b = np.array([0.1, big, -0.2, 0.3], np.float32)
    w2 = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 4).astype(np.float32)
    nodes = [
        helper.make_node("Mul", ["x", "tiny"], ["t"], name="shrink"),
        helper.make_node("Conv", ["t", "w", "b"], ["c"], name="conv1", pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
        helper.make_node("Conv", ["x", "w2", "b2"], ["z"], name="conv2", pads=[1] * 4),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_input",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
        [
            helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 4, 32, 32])
            for n in ("y", "z")
        ],
        [
            numpy_helper.from_array(a, n)
            for a, n in (
                (np.array(1e-30, np.float32), "tiny"),
                (w, "w"),
                (b, "b"),
                (w2, "w2"),
                (b2, "b2"),
            )
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def photos() -> list[dict[str, np.ndarray]]:
    return [
        {"x": realmodels.preprocess(im, (32, 32), scale=1 / 255)} for im in realmodels.images(3)
    ]


def _scales(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    return {n.input[1]: inits[n.input[1]] for n in dq}


WHY_1E36 = "at input scale 1e-12 needs a weight scale of 9.313e+38 to fit int32, beyond float32"


# an inf bias only for tensorrt: the onnxruntime target calibrates conv1's output too, and
# calibration refuses inf values (QuantizeError naming the tensor)
@pytest.mark.parametrize(
    ("target", "big", "why"),
    [
        ("tensorrt", 1e36, WHY_1E36),
        ("onnxruntime", 1e36, WHY_1E36),
        ("tensorrt", np.inf, "holds NaN or infinity"),
    ],
)
def test_floor_beyond_float32_keeps_the_node_float(photos, caplog, target, big, why) -> None:  # type: ignore[no-untyped-def]
    model = tiny_input_model(big)
    with caplog.at_level(logging.WARNING, logger="graphopt.quant"):
        q, report = quantize_with_report(
            model, photos, target=target, accuracy_target=None, pipeline=False, keep_stem=False
        )
    onnx.checker.check_model(q, full_check=True)
    assert "conv1" not in report.quantized_nodes and "conv2" in report.quantized_nodes
    said = [r.getMessage() for r in caplog.records if "'conv1' stays float" in r.getMessage()]
    assert len(said) == 1 and "bias 'b'" in said[0]
    assert why in said[0]
    conv1 = next(n for n in q.graph.node if n.name == "conv1")
    assert list(conv1.input[1:]) == ["w", "b"]  # its float weight and bias, read as they were
    assert all(np.all(np.isfinite(s)) and np.all(s > 0) for s in _scales(q).values())
    ref_s, q_s = session(model), session(q)
    for feed in photos:
        (ry, rz), (gy, gz) = ref_s.run(None, feed), q_s.run(None, feed)
        # channel 1 is the bias (x·1e-30 adds nothing): kept exactly, inf included
        np.testing.assert_array_equal(gy[:, 1], ry[:, 1])
        assert np.all(np.isfinite(gy[:, [0, 2, 3]]))
        assert np.abs(gz - rz).max() <= 0.03 * float(rz.max() - rz.min())


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_floor_within_float32_is_still_quantized(photos, target) -> None:  # type: ignore[no-untyped-def]
    """b[1] = 1e30: its floor, 9.3e32, is a float32; conv1 is quantized as before, finite."""
    model = tiny_input_model(1e30)
    q, report = quantize_with_report(
        model, photos, target=target, accuracy_target=None, pipeline=False, keep_stem=False
    )
    assert {"conv1", "conv2"} <= set(report.quantized_nodes)
    scales = _scales(q)
    assert all(np.all(np.isfinite(s)) and np.all(s > 0) for s in scales.values())
    w_scale = next(s for name, s in scales.items() if name.startswith("w_scale"))
    assert 9e32 < float(w_scale[1]) < 1e33  # the floor, 1e30 / (1e-12·2³⁰)
    ref_s, q_s = session(model), session(q)
    for feed in photos:
        for ref, got in zip(ref_s.run(None, feed), q_s.run(None, feed), strict=True):
            assert np.all(np.isfinite(got))
            assert np.abs(got - ref).max() <= 0.03 * float(ref.max() - ref.min())
