"""Review 13: target onnxruntime, a Conv whose weight another Conv reads too and whose int32
bias would overflow at the shared weight scale reads its own quantized copy of the weight,
its scales raised until the bias fits (as the tensorrt target already did); before, the whole
Conv stayed float.

The model: one weight W, channel 1 at 1e-20 (what a trainer's weight decay leaves), read by
`conv1` (with bias, → Relu → conv2) and by `conv3` (no bias). At W's own scale for channel 1
(1e-20 / 127, floored at 1e-12) conv1's bias 0.5 / (s_x·s_w) is ~1e14, far beyond int32. Calibrated on three
photographs: conv1 now quantized and fused by onnxruntime into a QLinearConv, y's largest
error 0.92 % of its range (0.25 % on the parent, conv1 float), z's 0.56 % on both (conv3 reads
W at its own scales, channel 1 not raised).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from graphopt import realmodels
from graphopt.backends.onnxruntime import session
from graphopt.quant.api import quantize_with_report


def shared_weight_model() -> onnx.ModelProto:
    """x → conv1(W, b) → Relu → conv2 → y, and x → conv3(W) → z."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    w[1] = 1e-20
    b = np.array([0.1, 0.5, -0.2, 0.3], np.float32)
    w2 = rng.normal(0, 0.3, (4, 4, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
        helper.make_node("Conv", ["x", "w"], ["z"], name="conv3", pads=[1] * 4),
    ]
    graph = helper.make_graph(
        nodes,
        "shared",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
        [
            helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 4, 32, 32])
            for n in ("y", "z")
        ],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (w2, "w2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model


def _dq_input(model: onnx.ModelProto, node_name: str, index: int) -> onnx.NodeProto | None:
    node = next(n for n in model.graph.node if n.name == node_name)
    dq = next((n for n in model.graph.node if node.input[index] in n.output), None)
    return dq if dq is not None and dq.op_type == "DequantizeLinear" else None


def test_onnxruntime_bias_node_reads_its_own_raised_weight_copy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = shared_weight_model()
    feeds = [
        {"x": realmodels.preprocess(im, (32, 32), scale=1 / 255)} for im in realmodels.images(3)
    ]
    q, report = quantize_with_report(
        model, feeds, target="onnxruntime", accuracy_target=None, pipeline=False
    )
    onnx.checker.check_model(q, full_check=True)
    assert {"conv1", "conv3"} <= set(report.quantized_nodes)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    own, shared = _dq_input(q, "conv1", 1), _dq_input(q, "conv3", 1)
    bias = _dq_input(q, "conv1", 2)
    assert own is not None and shared is not None and bias is not None
    assert own.input[0] != shared.input[0]  # two int8 copies of W
    own_scale, shared_scale = inits[own.input[1]], inits[shared.input[1]]
    w = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "w")
    amax = np.abs(w).reshape(4, -1).max(axis=1)
    np.testing.assert_array_equal(shared_scale, np.maximum(amax / 127, 1e-12).astype(np.float32))
    assert own_scale[1] > 1e3 * shared_scale[1]  # raised for conv1's bias alone
    np.testing.assert_array_equal(own_scale[[0, 2, 3]], shared_scale[[0, 2, 3]])
    qb, bscale = inits[bias.input[0]], inits[bias.input[1]]
    b = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "b")
    assert qb.dtype == np.int32  # and not saturated: b within half a step
    assert np.all(np.abs(qb.astype(np.float64) * bscale - b) <= bscale * 0.5001)
    # onnxruntime fuses conv1 (DQ → Conv → Q) into a QLinearConv
    fused = tmp_path / "fused.onnx"
    session(q, level="extended", optimized_path=str(fused))
    assert any(n.op_type == "QLinearConv" for n in onnx.load(str(fused)).graph.node)
    ref_s, q_s = session(model), session(q)
    for feed in feeds:
        for ref, got in zip(ref_s.run(None, feed), q_s.run(None, feed), strict=True):
            assert np.abs(got - ref).max() <= 0.03 * float(ref.max() - ref.min())
