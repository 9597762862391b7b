"""Calibrator math: entropy vs a slow loop written from TensorRT's description, order
independence, merging, minmax and percentile."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.errors import QuantizeError
from graphopt.quant.histogram import HistogramCalibrator, entropy_amax, entropy_divergences


def reference_divergences(hist: np.ndarray) -> list[float]:
    """EntropyCalibration2 as TensorRT's GTC 2017 description writes it, one candidate at a time."""
    hist = hist.astype(np.float64)
    out = []
    for i in range(128, hist.size + 1):
        p = hist[:i].copy()
        outliers = hist[i:].sum()
        p[i - 1] += outliers
        sliced = hist[:i].copy()
        m = i // 128
        q = np.zeros(i)
        for j in range(128):
            start = j * m
            stop = i if j == 127 else start + m
            level = sliced[start:stop].sum()
            nz = p[start:stop] > 0
            if nz.sum():
                if level == 0:  # only outliers here: smoothed, as MXNet/TVM do
                    level = 1e-4 * nz.sum()
                q[start:stop][nz] = level / nz.sum()
        if q.sum() == 0:
            out.append(np.inf)
            continue
        pn, qn = p / p.sum(), q / q.sum()
        mask = pn > 0
        if np.any(qn[mask] == 0):
            out.append(np.inf)
            continue
        out.append(float(np.sum(pn[mask] * np.log(pn[mask] / qn[mask]))))
    return out


def distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "gauss": rng.standard_normal(200_000).astype(np.float32),
        "relu_laplace": np.maximum(rng.laplace(size=200_000), 0).astype(np.float32),
        "heavy_tail": rng.standard_t(2, size=200_000).astype(np.float32),
        "silu": (lambda x: x / (1 + np.exp(-x)))(rng.normal(0, 3, 200_000)).astype(np.float32),
        "gauss_spike": np.concatenate([rng.standard_normal(100_000), [40.0, -35.0]]).astype(
            np.float32
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", list(distributions()))
def test_entropy_matches_slow_reference(name: str) -> None:
    calib = HistogramCalibrator()
    calib.collect(distributions()[name])
    fast = entropy_divergences(calib.counts)
    slow = np.array(reference_divergences(calib.counts))
    finite = np.isfinite(slow)
    assert np.array_equal(finite, np.isfinite(fast))
    np.testing.assert_allclose(fast[finite], slow[finite], rtol=1e-6, atol=1e-9)
    best_slow = int(np.argmin(slow)) + 128
    amax = entropy_amax(calib.counts, calib.bin_width)
    # ties within rounding may pick a neighbour; the chosen KL must equal the least one
    chosen = int(amax / calib.bin_width - 0.5)
    assert slow[chosen - 128] == pytest.approx(slow[best_slow - 128], rel=1e-9, abs=1e-12)


def test_entropy_clips_heavy_tail_and_keeps_gauss() -> None:
    d = distributions()
    heavy = HistogramCalibrator()
    heavy.collect(d["heavy_tail"])
    assert heavy.compute_amax("entropy") < 0.5 * heavy.compute_amax("minmax")
    spike = HistogramCalibrator()
    spike.collect(d["gauss_spike"])
    assert spike.compute_amax("entropy") < 8.0  # the two outliers are clipped


def test_entropy_floor_bounds_the_clipped_share() -> None:
    """KL alone clips a sparse histogram (a squeeze-excite vector: few values per image) hard;
    the floor keeps at most 0.01% of the values above amax, and entropy_floor=None is the bare
    KL threshold."""
    rng = np.random.default_rng(3)
    # 3072 values: 74% zeros, the rest a ReLU'd tail up to ~12 (ppocr_det's relu_1.tmp_0 shape)
    values = np.concatenate([np.zeros(2281), rng.exponential(2.5, 791)]).astype(np.float32)
    calib = HistogramCalibrator()
    calib.collect(values)
    bare = calib.compute_amax("entropy", entropy_floor=None)
    assert bare == entropy_amax(calib.counts, calib.bin_width)
    assert np.mean(np.abs(values) > bare) > 0.01  # KL alone clips over 1% of the values
    guarded = calib.compute_amax("entropy")
    floor = calib.compute_amax("percentile", 99.99)
    assert guarded == max(bare, floor) > bare
    assert np.mean(np.abs(values) > guarded) <= 1e-4
    # where KL already keeps more than the floor, the floor changes nothing
    d = distributions()["gauss"]
    gauss = HistogramCalibrator()
    gauss.collect(d)
    kl = gauss.compute_amax("entropy", entropy_floor=None)
    assert kl > gauss.compute_amax("percentile", 99.99)
    assert gauss.compute_amax("entropy") == kl


def test_order_independence_and_merge() -> None:
    rng = np.random.default_rng(1)
    batches = [rng.normal(0, s, 5000).astype(np.float32) for s in (0.1, 3.0, 0.5, 40.0, 1.0)]
    a = HistogramCalibrator()
    for b in batches:
        a.collect(b)
    b_ = HistogramCalibrator()
    for b in reversed(batches):
        b_.collect(b)
    assert a.exponent == b_.exponent
    assert np.array_equal(a.counts, b_.counts)
    halves = [HistogramCalibrator(), HistogramCalibrator()]
    for k, b in enumerate(batches):
        halves[k % 2].collect(b)
    halves[0].merge(halves[1])
    assert np.array_equal(halves[0].counts, a.counts)
    whole = HistogramCalibrator()
    whole.collect(np.concatenate(batches))
    assert np.array_equal(whole.counts, a.counts)
    for method in ("entropy", "minmax", "percentile"):
        assert a.compute_amax(method) == b_.compute_amax(method) == whole.compute_amax(method)


def test_minmax_percentile_and_zeros() -> None:
    calib = HistogramCalibrator()
    x = np.linspace(-3.0, 2.0, 100_001, dtype=np.float32)
    calib.collect(x)
    assert calib.compute_amax("minmax") == 3.0
    assert calib.minimum == -3.0 and calib.maximum == 2.0
    p = calib.compute_amax("percentile", percentile=50.0)
    assert abs(p - np.percentile(np.abs(x), 50)) <= calib.bin_width
    zero = HistogramCalibrator()
    zero.collect(np.zeros(10, np.float32))
    assert zero.compute_amax("entropy") == 0.0
    assert zero.compute_amax("minmax") == 0.0


def test_bad_values_raise() -> None:
    calib = HistogramCalibrator()
    with pytest.raises(QuantizeError):
        calib.collect(np.array([1.0, np.nan], np.float32))
    with pytest.raises(QuantizeError):
        calib.compute_amax("kl")


def test_an_all_zero_batch_weighs_what_a_sampled_batch_weighs() -> None:
    """A zero batch adds as many zeros as a sampled batch of its size adds values (it added all
    of its values, pulling percentiles toward 0), in any order."""
    from graphopt.quant.histogram import sample_stride

    rng = np.random.default_rng(4)
    live = rng.laplace(0, 1.0, (1, 16, 64, 64)).astype(np.float32)
    zero = np.zeros_like(live)
    stride = sample_stride(live.size, 1000)
    with_zero, order = HistogramCalibrator(sample_cap=1000), HistogramCalibrator(sample_cap=1000)
    for x in (live, zero):
        with_zero.collect(x)
    for x in (zero, live):
        order.collect(x)
    assert np.array_equal(with_zero.counts, order.counts)
    sampled = -(-live.size // stride)
    assert with_zero.counts.sum() == 2 * sampled
    twice = HistogramCalibrator(sample_cap=1000)
    for x in (live, live * 0.0 + 1e-30):  # a nearly-zero batch goes through sampling
        twice.collect(x)
    assert twice.counts.sum() == with_zero.counts.sum()


def test_subsampled_histograms_stay_order_independent() -> None:
    from graphopt.quant.histogram import sample_stride

    assert sample_stride(1000, 100) == 11  # least prime >= 10
    assert sample_stride(640 * 640, 1 << 16) == 7
    rng = np.random.default_rng(3)
    batches = [rng.laplace(0, s, (1, 8, 64, 64)).astype(np.float32) for s in (0.5, 2.0, 1.0)]
    a, b = HistogramCalibrator(sample_cap=1000), HistogramCalibrator(sample_cap=1000)
    for x in batches:
        a.collect(x)
    for x in batches[::-1]:
        b.collect(x)
    assert np.array_equal(a.counts, b.counts)
    assert a.counts.sum() < sum(x.size for x in batches)  # sampled
    assert a.maximum == max(float(x.max()) for x in batches)  # exact, not sampled
    full = HistogramCalibrator()
    for x in batches:
        full.collect(x)
    assert abs(
        a.compute_amax("percentile", 99.0) - full.compute_amax("percentile", 99.0)
    ) < 0.1 * full.compute_amax("percentile", 99.0)
