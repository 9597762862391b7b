"""Entropy calibration edge cases (adversarial review): a histogram whose values all sit far
from zero (a constant tensor: one occupied bin) under TensorRT's bare KL threshold."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.quant.histogram import HistogramCalibrator, entropy_divergences


@pytest.mark.parametrize("value", [0.3, 1.0, 2.5, 7.3, 100.0, -4.0])
@pytest.mark.parametrize("count", [1, 100, 65536])
def test_bare_entropy_never_clips_a_constant_tensor(value: float, count: int) -> None:
    """One occupied bin (≥ 1024, as every top bin is): a candidate below it clips every value
    and its Q holds nothing; smoothed, that Q equalled P and scored KL 0, so the first candidate
    won and amax was 128.5 bins, 1/8 to 1/16 of the constant."""
    calib = HistogramCalibrator()
    calib.collect(np.full(count, value, np.float32))
    amax = calib.compute_amax("entropy", entropy_floor=None)
    assert abs(value) <= amax <= abs(value) * 1.01


def test_bare_entropy_of_values_far_from_zero_keeps_the_smallest() -> None:
    """Values in [1, 2] (no mass in the first 128 bins): TensorRT's KL may clip to the smallest
    value (P and Q are both one bin there), never below every value."""
    x = np.random.default_rng(0).uniform(1.0, 2.0, 10_000).astype(np.float32)
    calib = HistogramCalibrator()
    calib.collect(x)
    assert calib.compute_amax("entropy", entropy_floor=None) >= float(x.min())


def test_candidates_below_every_value_are_infinite() -> None:
    counts = np.zeros(2048, np.int64)
    counts[1500] = 10
    kl = entropy_divergences(counts)
    assert np.all(np.isinf(kl[: 1500 - 128 + 1]))  # i = 128 .. 1500: nothing kept below i
    assert np.all(np.isfinite(kl[1500 - 128 + 1 :]))
