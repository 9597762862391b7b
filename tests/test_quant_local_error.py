"""The one-run local error ranking (graphopt.quant.local_error), the default accuracy target's
float-group search, and scale groups with reader bounds (graphopt.quant.api.parameters)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.ir import Graph
from graphopt.quant.api import DEFAULT_ACCURACY_TARGET, parameters, quantize_with_report
from graphopt.quant.histogram import HistogramCalibrator
from graphopt.quant.local_error import local_ranking, measuring_model
from graphopt.quant.placement import Plan, plan
from graphopt.quant.qdq import ActivationQuant
from graphopt.quant.sensitivity import choose_float_groups, groups
from tests.conftest import onnxruntime_int8_level, onnxruntime_runs_seven_bit_int8_fused
from tests.test_quant_api import conv_model, feeds


def planned(target: str = "tensorrt") -> tuple[onnx.ModelProto, Plan, dict[str, ActivationQuant]]:
    """conv_model with minmax parameters over `feeds()`."""
    from graphopt.quant.collect import collect

    model = conv_model()
    placement = plan(model, target)
    calibrators, _ = collect(model, placement.calibrated(Graph(model)), feeds())
    params, _ = parameters(calibrators, placement, target, "minmax")
    return model, placement, params


def test_local_ranking_puts_a_coarse_group_first() -> None:
    model, placement, params = planned()
    members = groups(Graph(model), placement)
    fine = local_ranking(model, placement, params, members, feeds(2))
    assert all(r > 0 for _, r in fine)  # int8 rounding is never exact on random data
    # conv2's input quantized 40× coarser than its range needs: conv2's group must be the worst
    coarse = dict(params)
    coarse["r1"] = ActivationQuant.symmetric(params["r1"].scale * 40)
    ranked = local_ranking(model, placement, coarse, members, feeds(2))
    assert ranked[0][0] == "conv2"
    worse = dict(ranked)["conv2"]
    assert worse > 100 * dict(fine)["conv2"]
    # local: conv3's input is not changed, so its ratio is not either (exact FP32 inputs)
    assert dict(ranked)["conv3"] == pytest.approx(dict(fine)["conv3"], rel=1e-3)


def test_measuring_model_keeps_the_fp32_graph() -> None:
    model, placement, params = planned("onnxruntime")
    members = groups(Graph(model), placement)
    probe, measured = measuring_model(model, placement, params, members)
    onnx.checker.check_model(probe)
    assert measured and {g for g, _, _ in measured} <= set(members)
    fp32 = {n.name for n in model.graph.node}
    assert fp32 <= {n.name for n in probe.graph.node}  # the FP32 nodes are all there, unchanged
    # every activation QuantizeLinear reads an FP32 tensor, never a quantized neighbour's
    quantize = [n for n in probe.graph.node if n.op_type == "QuantizeLinear"]
    produced = {o for n in model.graph.node for o in n.output} | {"x"}
    assert quantize and all(n.input[0] in produced for n in quantize)


def test_default_target_keeps_float_only_when_the_error_misses_it() -> None:
    # random weights and inputs: the fully quantized small model errs ~1% of the output range
    _, loose = quantize_with_report(conv_model(), feeds())
    assert loose.method == "minmax" and loose.error is not None
    assert loose.error <= DEFAULT_ACCURACY_TARGET and loose.kept_float == []
    _, tight = quantize_with_report(conv_model(), feeds(), accuracy_target=loose.error / 3)
    assert tight.kept_float and tight.error is not None and tight.error < loose.error
    assert tight.sensitivity[0][0] in tight.kept_float  # the worst-ranked group is float


def test_an_unreachable_target_is_a_warning(caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level("WARNING", logger="graphopt.quant"):
        _, report = quantize_with_report(conv_model(), feeds(), accuracy_target=1e-9)
    assert report.error is not None and report.error > 1e-9
    assert any("not reached" in r.getMessage() for r in caplog.records)


def test_accuracy_target_none_runs_no_search() -> None:
    _, report = quantize_with_report(conv_model(), feeds(), accuracy_target=None)
    assert report.error is None and report.sensitivity == [] and report.kept_float == []


def test_default_target_is_skipped_without_feeds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "c.cache"
    a = graphopt.quantize(conv_model(), feeds(), cache=cache)
    b = graphopt.quantize(conv_model(), None, from_cache=cache)  # nothing to measure on
    assert a.SerializeToString() == b.SerializeToString()


def test_unknown_ranking_is_refused() -> None:
    model, placement, params = planned()
    with pytest.raises(graphopt.errors.QuantizeError, match="unknown sensitivity ranking"):
        choose_float_groups(model, placement, params, feeds(2), set(), 1, None, ranking="best")


def calibrator(lo: float, hi: float) -> HistogramCalibrator:
    c = HistogramCalibrator(track_histogram=False)
    c.collect_range(lo, hi)
    return c


def test_reader_bounds_never_split_a_scale_group() -> None:
    # a (read only by Relu: bounds [0, inf)) and b (no bounds) share one scale through a Concat
    # root "a"; before, the root's bounds changed only its own scale
    placement = Plan("onnxruntime", {}, share={"a": "a", "b": "a", "cat": "a"})
    placement.bounds = {"a": (0.0, float("inf"))}
    cals = {"a": calibrator(-4.0, 2.0), "b": calibrator(-1.0, 1.0), "cat": calibrator(-4.0, 2.0)}
    for target in ("onnxruntime", "tensorrt"):
        params, scales = parameters(cals, placement, target, "minmax")
        assert len({scales[t] for t in cals}) == 1
        assert len({params[t] for t in cals}) == 1
    # every member bounded: the widest bounds apply to the whole group
    placement.bounds = {"a": (0.0, float("inf")), "b": (-1.0, float("inf")), "cat": (0.0, 9.0)}
    params, scales = parameters(cals, placement, "onnxruntime", "minmax")
    assert len({params[t] for t in cals}) == 1
    assert params["a"].scale == pytest.approx(3.0 / 255)  # range [-1, 2]


@pytest.mark.realmodel
def test_common_det_default_keeps_every_group_quantized(real_model, real_feeds) -> None:  # type: ignore[no-untyped-def]
    """The default (max calibration, accuracy target 0.05) on 4 photographs: the error is within
    the target, so nothing is float; on the 12 held-out images most FP32 boxes are kept
    (0.915 of 82 with or without Focus → SpaceToDepth; the last two alone: 0.912 → 0.897)."""
    from graphopt.backends.onnxruntime import session
    from graphopt.quant.evaluate import box_match

    path = str(real_model("common_det"))
    data = real_feeds("common_det", 16)
    q, report = quantize_with_report(path, data[:4], target="onnxruntime")
    assert report.kept_float == [] and report.error is not None
    assert report.error <= DEFAULT_ACCURACY_TARGET
    ref = session(path)
    boxes = [ref.run(None, f)[0] for f in data[4:]]
    # at onnxruntime's default level where its fused int8 kernels are right, else as written
    # (the level the search measured at); there (no VNNI: full-range weights saturate them,
    # 0.77 of the boxes here) "all" with 7-bit weights (measured: 0.963)
    level = onnxruntime_int8_level()
    runs = [session(q, level=level)]
    if level != "all" and onnxruntime_runs_seven_bit_int8_fused():
        seven, _ = quantize_with_report(path, data[:4], target="onnxruntime", reduce_range=True)
        runs.append(session(seven))
    for got in runs:
        share, count = box_match(boxes, [got.run(None, f)[0] for f in data[4:]])
        assert count > 60 and share >= 0.9, share


@pytest.mark.slow
@pytest.mark.realmodel
def test_ppocr_det_default_keeps_sensitive_groups_float(real_model, real_feeds) -> None:  # type: ignore[no-untyped-def]
    """Max calibration misses the target on the text detector; the float groups the local
    scores pick lower the error and bring the text masks of held-out views closer to FP32's."""
    from graphopt.backends.onnxruntime import session
    from graphopt.quant.evaluate import mask_iou

    path = str(real_model("ppocr_det"))
    data = real_feeds("ppocr_det", 16)
    text = data[14:16]  # page.png, text.png
    bare, measured = quantize_with_report(  # a target it meets: the error, no float group
        path, data, target="onnxruntime", sensitivity_data=text, accuracy_target=1.0
    )
    q, report = quantize_with_report(path, data, target="onnxruntime", sensitivity_data=text)
    assert measured.kept_float == [] and measured.error is not None
    assert measured.error > DEFAULT_ACCURACY_TARGET
    assert report.kept_float and report.error is not None and report.error < measured.error
    # held out: the mirror images
    feeds_ = [{k: np.ascontiguousarray(v[..., ::-1]) for k, v in f.items()} for f in text]
    ref = [session(path).run(None, f)[0] for f in feeds_]
    iou_bare = mask_iou(ref, [session(bare).run(None, f)[0] for f in feeds_])
    iou = mask_iou(ref, [session(q).run(None, f)[0] for f in feeds_])
    print(f"mask IoU {iou_bare:.3f} → {iou:.3f}, {len(report.kept_float)} groups float")
    assert iou > iou_bare + 0.03 and iou >= 0.85, (iou_bare, iou)


def test_most_varied_skips_a_flat_output() -> None:
    from graphopt.quant.sensitivity import most_varied

    rng = np.random.default_rng(0)
    flat = {"map": np.full((1, 1, 8, 8), 0.01, np.float32), "aux": np.zeros(3, np.float32)}
    busy = {
        "map": rng.uniform(0, 1, (1, 1, 8, 8)).astype(np.float32),
        "aux": np.zeros(3, np.float32),
    }
    assert most_varied([flat, busy]) == 1
    assert most_varied([busy, flat]) == 0
    assert most_varied([flat, flat]) == 0  # ties: the first


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_slice_copies_match_models_quantized_in_that_slice_only(target: str) -> None:
    from graphopt.backends.onnxruntime import run as ort_run
    from graphopt.quant.local_error import local_measurements
    from graphopt.quant.qdq import insert_qdq

    model, placement, params = planned(target)
    members = groups(Graph(model), placement)
    keys = list(members)  # topological order
    slices = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    feed = feeds(1)[0]
    nsr, reference, per_slice = local_measurements(model, placement, params, members, slices, feed)
    assert set(nsr) == set(members) and all(v >= 0 for v in nsr.values())
    np.testing.assert_allclose(reference["y"], ort_run(model, feed)["y"], rtol=1e-4, atol=1e-5)
    for part, outputs in zip(slices, per_slice, strict=True):
        others = {m for k in keys if k not in part for m in members[k]}
        # at the level the search's measuring run takes (collect.run_outputs)
        alone = ort_run(
            insert_qdq(model, placement, params, others), feed, level=onnxruntime_int8_level()
        )["y"]
        np.testing.assert_allclose(outputs["y"], alone, rtol=1e-4, atol=1e-4)
        assert not np.allclose(outputs["y"], reference["y"], rtol=1e-4, atol=1e-5)


def test_a_slice_that_leaves_an_output_as_in_fp32_reads_it_from_the_fp32_graph() -> None:
    """A second graph output upstream of the last slice's groups is computed exactly as in
    FP32 there: that slice's copy has no tensor of its own for it (onnxruntime refused the
    measuring model, 'graph output does not exist', on layout_cdla's TensorRT layout)."""
    from graphopt.quant.local_error import local_measurements

    model, placement, params = planned("tensorrt")
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("r1", onnx.TensorProto.FLOAT, None)
    )
    members = groups(Graph(model), placement)
    keys = list(members)
    slices = [keys[:1], keys[1:]]
    _nsr, reference, per_slice = local_measurements(
        model, placement, params, members, slices, feeds(1)[0]
    )
    assert set(reference) == {"y", "r1"}
    np.testing.assert_array_equal(per_slice[1]["r1"], reference["r1"])  # upstream: as in FP32
    assert not np.allclose(per_slice[1]["y"], reference["y"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(per_slice[0]["r1"], reference["r1"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("histograms", [False, True])
def test_calibration_run_gives_the_fp32_reference(histograms: bool) -> None:
    """The accuracy search's FP32 outputs come from the calibration run (no second session):
    the same values a plain session gives, for the first feeds only."""
    from graphopt.quant.collect import collect, run_outputs
    from graphopt.quant.samples import SampleKeeper, by_position

    model = conv_model()
    tensors = plan(model, "tensorrt").calibrated(Graph(model))
    first = SampleKeeper(2, by_position, uses_outputs=False)
    collect(model, tensors, feeds(), histograms=histograms, samples=first)
    reference = first.references or []
    plain = run_outputs(model, feeds()[:2])
    assert len(reference) == 2 and [sorted(r) for r in reference] == [["y"], ["y"]]
    # own copies: onnxruntime's arrays kept the calibration session's arena alive (+0.56 GiB)
    assert all(r["y"].flags.owndata for r in reference)
    for got, want in zip(reference, plain, strict=True):
        np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)


def test_search_from_the_calibration_reference_matches_a_separate_one() -> None:
    from graphopt.quant.collect import run_outputs
    from graphopt.quant.samples import by_content

    data = feeds()
    _, shared = quantize_with_report(conv_model(), data, accuracy_target=1e-3)
    fp32 = run_outputs(conv_model(), data)  # the two the default keeps: chosen by content
    order = sorted(range(len(data)), key=lambda i: by_content(i, data[i], fp32[i]))
    samples = [data[i] for i in order[:2]]
    _, separate = quantize_with_report(
        conv_model(), data, accuracy_target=1e-3, sensitivity_data=samples
    )
    assert shared.kept_float == separate.kept_float
    assert shared.error == pytest.approx(separate.error, rel=1e-4)
