"""Review 12: the histograms (so entropy, percentile and mse amax) do not depend on how the
calibration inputs are batched.

`histogram_sample` capped the values histogrammed per feed: a feed of 4 stacked images got a
prime stride about 4x longer through the whole batch than each image alone, so the same
photographs calibrated with batch size 1 and 4 gave different histograms (measured on the small
model below, 8 photographs, entropy: amax 3.6367 vs 3.6211 and 2.6172 vs 2.6055, 0.4 %). Each
image of a batch is now sampled as it would be alone.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphopt.quant.collect import batch_items, batched_inputs, collect
from graphopt.quant.histogram import HistogramCalibrator
from graphopt.realmodels import images, preprocess


def small_model(batch: int | str = "N") -> onnx.ModelProto:
    """x[N,3,224,224] → Conv → Relu → Conv/2 → SiLU → Conv → y: activations of 0.8 M and
    0.2 M values per image, over the 65536-value sample cap."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node(
            "Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        helper.make_node("Sigmoid", ["c2"], ["s2"], name="sig2"),
        helper.make_node("Mul", ["c2", "s2"], ["m2"], name="silu2"),
        helper.make_node("Conv", ["m2", "w3"], ["y"], name="conv3"),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [batch, 3, 224, 224])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [batch, 4, 112, 112])],
        [
            *(init("w1", 16, 3, 3, 3), init("b1", 16), init("w2", 16, 16, 3, 3)),
            *(init("b2", 16), init("w3", 4, 16, 1, 1)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def photographs() -> list[np.ndarray]:
    return [preprocess(im, (224, 224), scale=1 / 255) for im in images(8)]


TENSORS = ["x", "c1", "r1", "m2"]


def _calibrate(feeds: list[dict[str, np.ndarray]]) -> dict[str, HistogramCalibrator]:
    calibrators, _ = collect(small_model(), TENSORS, feeds, sample_cap=1 << 16)
    return calibrators


def test_batch_size_does_not_change_histograms_or_amax(photographs) -> None:  # type: ignore[no-untyped-def]
    one = _calibrate([{"x": p} for p in photographs])
    four = _calibrate(
        [{"x": np.concatenate(photographs[i : i + 4])} for i in range(0, len(photographs), 4)]
    )
    for t in TENSORS:
        a, b = one[t], four[t]
        assert a.exponent == b.exponent, t
        np.testing.assert_array_equal(a.counts, b.counts, err_msg=t)
        for method in ("entropy", "percentile", "mse"):
            assert a.compute_amax(method) == b.compute_amax(method), (t, method)
    # the cap held: c1 has 16·224·224 values per image, about 65536 of each were binned
    assert 8 * 60000 < one["c1"].counts.sum() < 8 * 70000


def test_batch_items_reads_the_free_first_dim() -> None:
    specs = [("x", 1, ["N", 3, 224, 224]), ("scale", 1, [1])]
    x4 = np.zeros((4, 3, 2, 2), np.float32)
    assert batch_items(specs, {"x": x4, "scale": np.ones(1, np.float32)}) == 4
    assert batch_items([("x", 1, [4, 3, 224, 224])], {"x": x4}) == 1  # fixed: no batch axis
    assert batch_items([("x", 1, ["N", 3]), ("y", 1, ["N", 3])], {"x": x4, "y": x4[:2]}) == 1
    # a free dim of another name counts other things (boxes), even when it happens to match
    boxes = np.zeros((4, 4), np.float32)
    assert batched_inputs([("x", 1, ["N", 3, 8, 8]), ("boxes", 1, ["K", 4])]) == ["x"]
    assert (
        batch_items(
            [("x", 1, ["N", 3, 8, 8]), ("boxes", 1, ["K", 4])], {"x": x4[:2], "boxes": boxes}
        )
        == 2
    )


def test_a_tensor_without_the_batch_axis_is_sampled_whole_at_items_times_the_cap() -> None:
    values = np.arange(1, 40001, dtype=np.float32).reshape(100, 400)
    c = HistogramCalibrator(sample_cap=1000)
    c.collect(values, items=4)  # first axis 100, not 4: one row, cap 4000
    assert 3600 < c.counts.sum() <= 4000
    single = HistogramCalibrator(sample_cap=1000)
    single.collect(values)  # items 1: as before, about 1000 values
    assert 900 < single.counts.sum() <= 1000


def _batched(photographs: list[np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    return [
        {"x": np.concatenate(photographs[i : i + size])} for i in range(0, len(photographs), size)
    ]


@pytest.mark.parametrize("histograms", [True, False])
def test_samples_are_images_whatever_the_batch_size(photographs, histograms: bool) -> None:  # type: ignore[no-untyped-def]
    """The accuracy search's sample feeds were whole batches: at batch size 4 the two 'most
    varied feeds' were 8 photographs, at batch size 1 two of them (ppocr_det, 6 photographs,
    minmax: 6 groups kept float at batch size 3, 14 at batch size 1)."""
    from graphopt.quant.samples import SampleKeeper

    kept = []
    for size in (1, 4):
        keeper = SampleKeeper(2)
        collect(
            small_model(),
            TENSORS,
            _batched(photographs, size),
            samples=keeper,
            histograms=histograms,
            sample_cap=1 << 16,
        )
        assert keeper.references is not None
        kept.append((keeper.feeds, keeper.references))
    (feeds1, refs1), (feeds4, refs4) = kept
    assert [f["x"].shape for f in feeds4] == [(1, 3, 224, 224)] * 2
    for a, b in zip(feeds1, feeds4, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])
    for a, b in zip(refs1, refs4, strict=True):
        np.testing.assert_array_equal(a["y"], b["y"])


def test_quantized_model_is_the_same_at_batch_size_1_and_4(photographs) -> None:  # type: ignore[no-untyped-def]
    from graphopt.quant.api import quantize_with_report

    models = []
    for size in (1, 4):
        q, report = quantize_with_report(
            small_model(), _batched(photographs, size), accuracy_target=0.002, keep_stem=False
        )
        models.append((q.SerializeToString(), report.kept_float, report.error))
    assert models[0][1]  # the search kept groups float: it measured on the samples
    assert models[0] == models[1]
