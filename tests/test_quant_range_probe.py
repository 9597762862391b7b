"""The calibration range probe (graphopt.quant.range_probe): ranges derived from other tensors'
scalars give the Q/DQ parameters and cache scales that exact min/max tracking gives, with fewer
passes over the activations."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.ir import Graph
from graphopt.quant.api import parameters
from graphopt.quant.collect import collect
from graphopt.quant.placement import plan
from graphopt.quant.range_probe import with_range_outputs
from tests.test_quant_api import conv_model, feeds


def reduced_inputs(model: onnx.ModelProto, op: str) -> set[str]:
    return {n.input[0] for n in model.graph.node if n.op_type == op}


@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_derived_ranges_give_the_exact_parameters(target: str) -> None:
    model = conv_model()
    placement = plan(model, target)
    tensors = placement.calibrated(Graph(model))
    ranged, _ = collect(model, tensors, feeds(), histograms=False, same_scale=placement.share)
    exact, _ = collect(model, tensors, feeds(), histograms=True)
    got, got_scales = parameters(ranged, placement, target, "minmax")
    want, want_scales = parameters(exact, placement, target, "minmax")
    assert got == want
    assert {t: s.tobytes() for t, s in got_scales.items()} == {
        t: s.tobytes() for t, s in want_scales.items()
    }


def test_derived_tensors_cost_no_pass_over_the_activation() -> None:
    """conv_model: r1 = Relu(c1), s2 = σ(c2), m2 = c2·σ(c2), p = MaxPool(a) sharing a's scale,
    cat = Concat(a, p). σ and the SiLU product are measured (onnxruntime's sigmoid is not
    monotone in the last bits: tests/test_review_range_probe.py)."""
    model = conv_model()
    tensors = ["x", "c1", "r1", "c2", "s2", "m2", "a", "p", "cat"]
    probe, slots = with_range_outputs(model, tensors, {"a": "a", "p": "a"})
    maxes, mins = reduced_inputs(probe, "ReduceMax"), reduced_inputs(probe, "ReduceMin")
    assert maxes == {"x", "c1", "c2", "s2", "m2", "a"}
    assert mins == {"x", "c1", "c2", "m2", "a"}  # σ is never negative: no min
    by_tensor = dict(zip(tensors, slots, strict=True))
    assert by_tensor["p"] == by_tensor["a"]  # one scale: the group's range is a's
    assert not by_tensor["m2"].with_zero and not by_tensor["c2"].with_zero
    # exact, value for value, against min/max tracked over the activations themselves
    ranged, _ = collect(model, tensors, feeds(), histograms=False, same_scale={"p": "a", "a": "a"})
    exact, _ = collect(model, tensors, feeds(), histograms=True)
    for t in ("x", "c1", "r1", "c2", "s2", "m2", "a", "cat"):
        assert ranged[t].maximum == exact[t].maximum, t
        if t not in ("r1", "s2"):  # never negative: min taken as 0
            assert ranged[t].minimum == exact[t].minimum, t


def test_max_pool_without_a_shared_scale_is_measured() -> None:
    model = conv_model()
    probe, _ = with_range_outputs(model, ["a", "p"])
    assert "p" in reduced_inputs(probe, "ReduceMax")


@pytest.mark.parametrize("attribute", ["ceil_mode", "wide_pads"])
def test_max_pool_whose_window_may_miss_the_input_is_measured(attribute: str) -> None:
    """Only a MaxPool whose every window holds an input element yields a subset of its input's
    values (a window wholly in padding would output the padding)."""
    model = conv_model()
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    if attribute == "ceil_mode":
        pool.attribute.append(helper.make_attribute("ceil_mode", 1))
    else:
        pads = next(a for a in pool.attribute if a.name == "pads")
        pads.ints[:] = [3, 3, 3, 3]  # the kernel is 3 wide
    probe, _ = with_range_outputs(model, ["a", "p"], {"a": "a", "p": "a"})
    assert "p" in reduced_inputs(probe, "ReduceMax")


def gated_model(alpha: float) -> onnx.ModelProto:
    """x → HardSigmoid(α) → h; m = x·h; y = Relu(m)."""
    nodes = [
        helper.make_node("HardSigmoid", ["x"], ["h"], alpha=alpha, beta=0.5),
        helper.make_node("Mul", ["x", "h"], ["m"]),
        helper.make_node("Relu", ["m"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gated",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("high", [5.0, -0.5])
def test_hard_swish_max_derived_up_to_zero(high: float) -> None:
    """max(x·hsig(x)) = (max x)·hsig(max x) when max x ≥ 0; below, every value is ≤ 0 and the
    range (which Q/DQ widens to include 0) has the same parameters as the exact one."""
    model = gated_model(1 / 6)
    rng = np.random.default_rng(3)
    data = [{"x": rng.uniform(-4.0, high, (1, 64)).astype(np.float32)} for _ in range(3)]
    tensors = ["x", "h", "m"]
    probe, _ = with_range_outputs(model, tensors)
    assert reduced_inputs(probe, "ReduceMax") == {"x"}
    ranged, _ = collect(model, tensors, data, histograms=False)
    exact, _ = collect(model, tensors, data, histograms=True)
    for t in tensors:
        assert ranged[t].compute_amax("minmax") == exact[t].compute_amax("minmax"), t
        assert max(ranged[t].maximum, 0.0) == max(exact[t].maximum, 0.0), t
        assert min(ranged[t].minimum, 0.0) == min(exact[t].minimum, 0.0), t


def test_decreasing_hard_sigmoid_is_measured() -> None:
    probe, _ = with_range_outputs(gated_model(-0.2), ["x", "h", "m"])
    assert reduced_inputs(probe, "ReduceMax") == {"x", "h", "m"}


def test_derived_ranges_skip_a_feed_where_the_tensor_is_empty() -> None:
    model = conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    full = np.random.default_rng(5).uniform(-1, 2, (1, 3, 16, 16)).astype(np.float32)
    data = [{"x": np.zeros((0, 3, 16, 16), np.float32)}, {"x": full}]
    tensors = ["c1", "r1", "c2", "s2", "m2", "a", "cat"]
    ranged, _ = collect(model, tensors, data, histograms=False)
    exact, _ = collect(model, tensors, data, histograms=True)
    for t in tensors:
        assert ranged[t].maximum == exact[t].maximum, t
        assert ranged[t].minimum <= 0.0 or ranged[t].minimum == exact[t].minimum, t


def affine_model() -> onnx.ModelProto:
    """hard-swish m = x·hsig(x), then a learnable affine v = a·m + b (PP-LCNet), and u = x·(−2)."""
    consts = [
        helper.make_tensor("a", TensorProto.FLOAT, [1], [1.7]),
        helper.make_tensor("b", TensorProto.FLOAT, [1], [-0.3]),
        helper.make_tensor("neg", TensorProto.FLOAT, [], [-2.0]),
    ]
    nodes = [
        helper.make_node("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["x", "h"], ["m"]),
        helper.make_node("Mul", ["a", "m"], ["w"]),
        helper.make_node("Add", ["w", "b"], ["v"]),
        helper.make_node("Mul", ["x", "neg"], ["u"]),
        helper.make_node("Add", ["v", "u"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        consts,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_constant_scale_and_shift_map_the_range() -> None:
    model = affine_model()
    rng = np.random.default_rng(4)
    data = [{"x": rng.uniform(-4.0, 3.0, (1, 64)).astype(np.float32)} for _ in range(3)]
    tensors = ["x", "h", "m", "w", "v", "u", "y"]
    probe, slots = with_range_outputs(model, tensors)
    # m is measured in full (w and v derive from its exact range), w, v and u not at all
    assert reduced_inputs(probe, "ReduceMax") == {"x", "m", "y"}
    assert reduced_inputs(probe, "ReduceMin") == {"x", "m", "y"}
    assert not any(s.with_zero for s in slots)
    ranged, _ = collect(model, tensors, data, histograms=False)
    exact, _ = collect(model, tensors, data, histograms=True)
    for t in tensors:
        assert ranged[t].maximum == exact[t].maximum, t
        if t != "h":  # never negative: min taken as 0
            assert ranged[t].minimum == exact[t].minimum, t


def test_float16_derived_ranges() -> None:
    """A float16 model's σ and x·σ(x) ranges (measured since onnxruntime's σ proved not monotone
    in the last bits) are the exact ones, up to ∪ {0} where the slot says so."""
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("Mul", ["x", "s"], ["m"]),
    ]
    graph = helper.make_graph(
        nodes,
        "silu16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 64])],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT16, [1, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    rng = np.random.default_rng(6)
    for high in (3.0, -0.5):
        data = [{"x": rng.uniform(-4.0, high, (1, 64)).astype(np.float16)} for _ in range(2)]
        ranged, _ = collect(model, ["x", "s", "m"], data, histograms=False)
        exact, _ = collect(model, ["x", "s", "m"], data, histograms=True)
        for t in ("x", "s", "m"):
            assert max(ranged[t].maximum, 0.0) == max(exact[t].maximum, 0.0), (high, t)
            assert ranged[t].compute_amax("minmax") == exact[t].compute_amax("minmax"), (high, t)
        assert ranged["s"].maximum == exact["s"].maximum


def test_runs_in_flight_give_the_sequential_ranges_and_reference() -> None:
    """Two feeds in flight (two cores: one thread each) fold into the same ranges, the FP32
    reference of the first feeds in feed order, and count batches in order."""
    from graphopt.quant.collect import runs_in_flight
    from graphopt.quant.samples import SampleKeeper, by_position

    assert runs_in_flight(1) == 1 and runs_in_flight(2) == 2 and runs_in_flight(16) == 2
    assert runs_in_flight(16, 1) == 1 and runs_in_flight(16, 4) == 4
    model = conv_model()
    tensors = plan(model, "onnxruntime").calibrated(Graph(model))
    results = []
    for threads in (1, 2):
        first = SampleKeeper(3, by_position, uses_outputs=False)
        counts: list[int] = []
        ranged, count = collect(
            model,
            tensors,
            feeds(7),
            threads=threads,
            histograms=False,
            samples=first,
            on_batch=counts.append,
            in_flight=2,
        )
        reference = first.references or []
        assert count == 7 and counts == list(range(8))
        results.append(({t: (c.minimum, c.maximum) for t, c in ranged.items()}, reference))
    (seq, seq_ref), (par, par_ref) = results
    assert seq == par
    assert len(seq_ref) == len(par_ref) == 3
    for a, b in zip(seq_ref, par_ref, strict=True):
        np.testing.assert_array_equal(a["y"], b["y"])
    first = [{"x": f["x"]} for f in feeds(3)]
    np.testing.assert_allclose(par_ref[2]["y"], ort_outputs(model, first[2]), rtol=1e-5)


def ort_outputs(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    from graphopt.backends.onnxruntime import session

    return session(model).run(["y"], feed)[0]


def test_a_failing_run_in_flight_names_its_feed(monkeypatch) -> None:
    """onnxruntime's failure in a run on the pool's thread comes out of `collect`, named."""
    from graphopt.errors import QuantizeError
    from graphopt.quant import collect as collect_module

    original = collect_module._run

    def failing(sess, names, feed, where):  # type: ignore[no-untyped-def]
        if where == "calibration feed 3":
            raise QuantizeError(f"{where}: onnxruntime failed: test")
        return original(sess, names, feed, where)

    monkeypatch.setattr(collect_module, "_run", failing)
    with pytest.raises(QuantizeError, match="calibration feed 3"):
        collect(conv_model(), ["c1", "a"], feeds(6), threads=2, histograms=False, in_flight=2)


def test_parallel_feeds_give_the_same_model_and_default_to_one(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """One batch of activations alive at a time unless asked: `parallel_feeds=2` runs two, and
    the quantized model is byte-identical either way."""
    import graphopt
    from graphopt.errors import QuantizeError
    from graphopt.quant import collect as collect_module

    seen: list[int] = []
    original = collect_module.runs_in_flight

    def spy(threads: int = 0, wanted: int = 2) -> int:
        seen.append(wanted)
        return original(threads, wanted)

    monkeypatch.setattr(collect_module, "runs_in_flight", spy)
    model = conv_model()
    one = graphopt.quantize(model, feeds(5), target="onnxruntime", threads=2)
    two = graphopt.quantize(model, feeds(5), target="onnxruntime", threads=2, parallel_feeds=2)
    assert seen == [1, 2]
    assert one.SerializeToString() == two.SerializeToString()
    with pytest.raises(QuantizeError, match="parallel_feeds must be 1 or more"):
        graphopt.quantize(model, feeds(2), parallel_feeds=0)
