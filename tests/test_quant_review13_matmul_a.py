"""Review 13: a MatMul whose constant weight is its first input, Y = W·X (a transposed linear
layer, as exporters write it), gets its weight quantized; before, only MatMul(X, W) was planned
and W·X stayed float on both targets.

W [M, K] is quantized per tensor on both targets (`placement.MATMUL_A_WEIGHT_AXIS`): TensorRT
scales MatMul weights per channel only where the constant is the second input, and
onnxruntime's QLinearMatMul takes a scalar scale for A. Measured on the model below,
calibrated on the ten photographs it is checked on: largest output error 3.0 % (tensorrt) and
2.0 % (onnxruntime) of the output's largest value (per-row scales on axis 0: 3.5 % and 1.7 %;
the activations dominate).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.trt_check import check_tensorrt, errors
from graphopt.quant.api import quantize_with_report
from graphopt.quant.placement import plan
from graphopt.realmodels import images, preprocess
from tests.conftest import onnxruntime_int8_level


def weight_first_model() -> onnx.ModelProto:
    """x [1, 3, 32, 32] → Conv/2 → Relu → Reshape [1, 8, 256] → MatMul(W [10, 8], ·) → y."""
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.2).astype(np.float32)
    wm = (rng.standard_normal((10, 8)) * 0.3).astype(np.float32)
    wm[3] *= 0.05  # one output row far smaller than the others
    nodes = [
        helper.make_node(
            "Conv", ["x", "w1", "b1"], ["c1"], name="conv", pads=[1] * 4, strides=[2, 2]
        ),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Reshape", ["r1", "shape"], ["tokens"], name="tokens"),
        helper.make_node("MatMul", ["wm", "tokens"], ["y"], name="matmul_wx"),
    ]
    graph = helper.make_graph(
        nodes,
        "weight_first",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 10, 256])],
        [
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(np.array([1, 8, 256], np.int64), "shape"),
            numpy_helper.from_array(wm, "wm"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def photos() -> list[dict[str, np.ndarray]]:
    return [{"x": preprocess(im, (32, 32), scale=1 / 255)} for im in images(10)]


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_plan_takes_the_first_input_as_the_weight(target: str) -> None:
    p = plan(weight_first_model(), target).nodes["matmul_wx"]
    assert p.weights == {0: None} and p.activations == [1]


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_weight_first_matmul_is_quantized_on_photographs(photos, target: str) -> None:  # type: ignore[no-untyped-def]
    model = weight_first_model()
    q, report = quantize_with_report(
        model, photos, target=target, accuracy_target=None, keep_stem=False
    )
    onnx.checker.check_model(q, full_check=True)
    assert "matmul_wx" in report.quantized_nodes
    producer = {o: n for n in q.graph.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    matmul = next(n for n in q.graph.node if n.name == "matmul_wx")
    # the weight: int8 behind a per-tensor DequantizeLinear, within half a step of W
    dq = producer[matmul.input[0]]
    assert dq.op_type == "DequantizeLinear" and not [a for a in dq.attribute if a.name == "axis"]
    qw, scale = inits[dq.input[0]], inits[dq.input[1]]
    assert qw.dtype == np.int8 and qw.shape == (10, 8) and scale.shape == ()
    w = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "wm")
    assert np.abs(qw.astype(np.float32) * scale - w).max() <= scale / 2 * (1 + 1e-6)
    # the activation: Q → DQ of the Reshape's output
    act = producer[matmul.input[1]]
    assert act.op_type == "DequantizeLinear"
    assert producer[act.input[0]].op_type == "QuantizeLinear"
    if target == "tensorrt":
        assert not errors(check_tensorrt(q))
    # at onnxruntime's default level where its fused int8 kernels are right, else as written:
    # on a CPU without VNNI they saturate on full-range weights (onnxruntime's layout: 23 % off
    # at "all"). No 7-bit check: with reduce_range's weights this model errs 4.2 % (tensorrt)
    # and 3.7 % (onnxruntime) as written, at the bound on their own
    level = onnxruntime_int8_level()
    for feed in photos:
        want, got = ort_run(model, feed)["y"], ort_run(q, feed, level=level)["y"]
        assert np.abs(got - want).max() <= 0.04 * np.abs(want).max()
