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
from graphopt.quant.range_probe import with_range_outputs


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


def pool_model(op: str) -> onnx.ModelProto:
    """c = Conv(x); p = MaxPool 2×2 / 2 (or a nearest Resize by 1/2) of c, in c's scale group;
    t = Transpose(p) (its own group on the onnxruntime target); y = Conv(t)."""
    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.5).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((4, 8, 1, 1)) * 0.5).astype(np.float32), "w2")
    scales = numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "scales")
    roi = numpy_helper.from_array(np.zeros(0, np.float32), "roi")
    if op == "MaxPool":
        pool = helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2])
    else:
        pool = helper.make_node("Resize", ["c", "roi", "scales"], ["p"], mode="nearest")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
        pool,
        helper.make_node("Transpose", ["p"], ["t"], perm=[0, 1, 3, 2]),
        helper.make_node("Conv", ["t", "w2"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    return make_model(nodes, [x], [y], [w1, w2, scales, roi])


def pool_feeds() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(4)
    return [{"x": rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(4)]


@pytest.mark.parametrize("op", ["MaxPool", "Resize"])
def test_a_pooled_range_is_not_passed_on_outside_its_scale_group(op: str) -> None:
    """p = MaxPool(c) takes c's range (exact for the group {c, p}, not for p: the pool drops c's
    minimum); t = Transpose(p) is in no group, so it must not inherit c's range."""
    model = pool_model(op)
    share = {"c": "c", "p": "c"}
    assert_ranges_exact(model, ["c", "p", "t"], pool_feeds(), share, skip=("p",))
    ranged, exact = quantized_both_ways(model, pool_feeds(), "onnxruntime")
    assert ranged == exact


def test_derivations_from_a_pooled_range() -> None:
    """From p = MaxPool(c) (c's range, in c's group): a Reshape / Concat in the same group
    derives (the group's union is unchanged), a Concat with c itself anywhere derives (c covers
    p), a Relu, x·a, Reshape, Concat outside the group are measured; all give the exact ranges
    (those in the group: the group's)."""
    a = numpy_helper.from_array(np.array([-2.0], np.float32), "a")
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"]),
        helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[1, 1], strides=[2, 2]),
        helper.make_node("Reshape", ["x", "shape"], ["xf"]),
        helper.make_node("Reshape", ["c", "shape"], ["cf"]),
        helper.make_node("Reshape", ["p", "shape"], ["r_in"]),
        helper.make_node("Reshape", ["p", "shape"], ["r_out"]),
        helper.make_node("Concat", ["r_in", "xf"], ["cat_in"], axis=1),
        helper.make_node("Concat", ["r_in", "xf"], ["cat_out"], axis=1),
        helper.make_node("Concat", ["cf", "r_in"], ["cat_cover"], axis=1),
        helper.make_node("Relu", ["p"], ["relu"]),
        helper.make_node("Mul", ["p", "a"], ["scaled"]),
    ]
    outputs = ["r_out", "cat_in", "cat_out", "cat_cover", "relu", "scaled"]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    model = make_model(
        nodes,
        [x],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [ones_conv("w1"), a, shape],
    )
    group = {"c": "c", "p": "c", "r_in": "c", "cat_in": "c"}
    tensors = ["x", "c", "p", "xf", "cf", "r_in", *outputs]
    probe, _ = with_range_outputs(model, tensors, group)
    maxes = {n.input[0] for n in probe.graph.node if n.op_type == "ReduceMax"}
    assert maxes == {"x", "c", "r_out", "cat_out", "relu", "scaled"}
    # c's top-left pixel holds its maximum, which MaxPool(stride 2) keeps; c's minimum is at
    # (1, 1), which p never sees
    x_values = np.linspace(0.5, 1.0, 16, dtype=np.float32).reshape(1, 1, 4, 4)
    x_values[0, 0, 0, 0], x_values[0, 0, 1, 1] = 2.0, -3.0
    data = [{"x": x_values}]
    in_group = ("p", "r_in", "cat_in")  # exact only as members of c's group
    assert_ranges_exact(model, tensors, data, group, skip=in_group)
    ranged, _ = collect(model, tensors, data, histograms=False, same_scale=group)
    exact, _ = collect(model, tensors, data, histograms=True)
    members = ("c", *in_group)
    union = (min(exact[t].minimum for t in members), max(exact[t].maximum for t in members))
    for t in in_group:
        assert (ranged[t].minimum, ranged[t].maximum) == union, t


def test_dilated_max_pool_whose_window_misses_the_input_is_measured() -> None:
    """kernel 2, dilation 3, pad 1 over 2 pixels: the one window's taps are at −1 and 2, both
    padding, so onnxruntime outputs the float's lowest value, no input element: p is not a
    subset of c and its own range (the group's minimum) is measured."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"]),
        helper.make_node(
            "MaxPool", ["c"], ["p"], kernel_shape=[2, 2], dilations=[3, 3], pads=[1, 1, 1, 1]
        ),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])
    p = helper.make_tensor_value_info("p", TensorProto.FLOAT, None)
    model = make_model(nodes, [x], [p], [ones_conv("w1")])
    data = [{"x": np.array([[[[0.5, -1.0], [2.0, 0.25]]]], np.float32)}]
    group = {"c": "c", "p": "c"}
    probe, _ = with_range_outputs(model, ["c", "p"], group)
    assert "p" in {n.input[0] for n in probe.graph.node if n.op_type == "ReduceMin"}
    ranged, _ = collect(model, ["c", "p"], data, histograms=False, same_scale=group)
    exact, _ = collect(model, ["c", "p"], data, histograms=True)
    assert exact["p"].minimum == float(np.finfo(np.float32).min)  # the all-padding window
    assert min(c.minimum for c in ranged.values()) == min(c.minimum for c in exact.values())


def test_an_all_minus_infinity_activation_is_not_taken_for_an_empty_one() -> None:
    """l = Log(x) of an all-zero feed is −inf everywhere: its max is −inf like an empty
    tensor's, but its min is −inf too (an empty one's is +inf). Exact tracking refuses the
    infinity; so must the range probe (it skipped the feed as empty)."""
    from graphopt.errors import QuantizeError

    nodes = [helper.make_node("Log", ["x"], ["l"]), helper.make_node("Relu", ["l"], ["r"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    r = helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 4])
    model = make_model(nodes, [x], [r])
    data = [{"x": np.full((1, 4), 2.0, np.float32)}, {"x": np.zeros((2, 4), np.float32)}]
    for histograms in (True, False):
        with pytest.raises(QuantizeError, match="NaN or infinity"):
            collect(model, ["l", "r"], data, histograms=histograms)
    # an empty batch is still skipped, and a finite one still counts
    data = [{"x": np.zeros((0, 4), np.float32)}, {"x": np.full((1, 4), 2.0, np.float32)}]
    assert_ranges_exact(model, ["l", "r"], data)


@pytest.mark.parametrize("factor", [2.0, 3.0, 1.5])
def test_an_integer_nearest_upsample_keeps_its_own_range(factor: float) -> None:
    """u = nearest Resize of c by a constant integer factor copies every pixel of c, so its own
    range is c's and a Concat with it outside c's group derives (the FPN of both real models);
    by 1.5 the probe does not prove that every pixel is copied, and the Concat is measured.
    Both exact."""
    scales = numpy_helper.from_array(np.array([1, 1, factor, factor], np.float32), "scales")
    roi = numpy_helper.from_array(np.zeros(0, np.float32), "roi")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"]),
        helper.make_node("Resize", ["c", "roi", "scales"], ["u"], mode="nearest"),
        helper.make_node("Concat", ["u", "u2"], ["cat"], axis=1),
    ]
    size = int(4 * factor)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    u2 = helper.make_tensor_value_info("u2", TensorProto.FLOAT, [1, 1, size, size])
    cat = helper.make_tensor_value_info("cat", TensorProto.FLOAT, None)
    model = make_model(nodes, [x, u2], [cat], [ones_conv("w1"), scales, roi])
    tensors, group = ["c", "u", "u2", "cat"], {"c": "c", "u": "c"}
    probe, _ = with_range_outputs(model, tensors, group)
    measured = {n.input[0] for n in probe.graph.node if n.op_type == "ReduceMax"}
    assert measured == ({"c", "u2"} if factor != 1.5 else {"c", "u2", "cat"})
    rng = np.random.default_rng(8)
    data = [
        {
            "x": rng.uniform(-2, 2, (1, 1, 4, 4)).astype(np.float32),
            "u2": rng.uniform(-1, 1, (1, 1, size, size)).astype(np.float32),
        }
        for _ in range(3)
    ]
    assert_ranges_exact(model, tensors, data, group)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("scale", [-2.5, 0.0, 3.0])
def test_derived_chains_are_exact(dtype: type, scale: float) -> None:
    """Chains of derivations, float32 and float16 (scalar nodes in the model's type): hard-swish
    z = x·hsig(x) (all-negative, mixed and positive x), x·a (a < 0 swaps the ends, a = 0),
    a·z + b from a z measured in full, Relu of an affine, its Reshape, a Concat with the affine
    on the batch axis, with an empty feed among them: all as measured, up to ∪ {0}."""
    elem = TensorProto.FLOAT16 if dtype is np.float16 else TensorProto.FLOAT
    a = numpy_helper.from_array(np.array([scale], dtype), "a")
    b = numpy_helper.from_array(np.array(0.75, dtype), "b")
    shape = numpy_helper.from_array(np.array([-1, 16], np.int64), "shape")
    nodes = [
        helper.make_node("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["h", "x"], ["z"]),
        helper.make_node("Mul", ["a", "z"], ["za"]),
        helper.make_node("Add", ["za", "b"], ["zb"]),
        helper.make_node("Mul", ["x", "a"], ["u"]),
        helper.make_node("Add", ["b", "u"], ["v"]),
        helper.make_node("Relu", ["v"], ["rv"]),
        helper.make_node("Reshape", ["rv", "shape"], ["flat"]),
        helper.make_node("Concat", ["rv", "v", "z"], ["cat"], axis=0),
    ]
    names = ["h", "z", "za", "zb", "u", "v", "rv", "flat", "cat"]
    x = helper.make_tensor_value_info("x", elem, ["N", 16])
    outputs = [helper.make_tensor_value_info(o, elem, None) for o in ("zb", "flat", "cat")]
    model = make_model(nodes, [x], outputs, [a, b, shape])
    model.opset_import[0].version = 19
    probe, _ = with_range_outputs(model, ["x", *names])
    assert {n.input[0] for n in probe.graph.node if n.op_type == "ReduceMax"} == {"x", "z"}
    rng = np.random.default_rng(9)
    for low, high in [(-6.0, -0.5), (-2.9, -0.1), (-4.0, 3.0), (0.2, 5.0)]:
        data = [{"x": rng.uniform(low, high, (n, 16)).astype(dtype)} for n in (2, 0, 3)]
        assert_ranges_exact(model, ["x", *names], data)
