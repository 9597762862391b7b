"""Merging histograms: only those sampled alike (`sample_cap`) add up to the histogram of
collecting everything at once; two sampled differently were summed into neither."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.errors import QuantizeError
from graphopt.quant.histogram import HistogramCalibrator
from graphopt.realmodels import images


def _photo_values() -> list[np.ndarray]:
    """Two photographs as float32 pixel values in 0..1, one per collect call."""
    return [img.astype(np.float32).ravel() / 255.0 for img in images(2)]


def test_histograms_sampled_alike_merge_to_the_whole() -> None:
    first, second = _photo_values()
    whole = HistogramCalibrator(sample_cap=4096)
    whole.collect(first)
    whole.collect(second)
    a, b = HistogramCalibrator(sample_cap=4096), HistogramCalibrator(sample_cap=4096)
    a.collect(first)
    b.collect(second)
    a.merge(b)
    assert a.exponent == whole.exponent
    assert np.array_equal(a.counts, whole.counts)


@pytest.mark.parametrize(("mine", "theirs"), [(0, 4096), (4096, 0), (4096, 65536)])
def test_histograms_sampled_differently_are_not_merged(mine: int, theirs: int) -> None:
    first, second = _photo_values()
    a, b = HistogramCalibrator(sample_cap=mine), HistogramCalibrator(sample_cap=theirs)
    a.collect(first)
    b.collect(second)
    before = a.counts.copy()
    with pytest.raises(QuantizeError, match="sampled differently"):
        a.merge(b)
    assert np.array_equal(a.counts, before)


def test_ranges_without_histograms_merge_whatever_the_cap() -> None:
    first, second = _photo_values()
    a = HistogramCalibrator(track_histogram=False, sample_cap=0)
    b = HistogramCalibrator(track_histogram=False, sample_cap=4096)
    a.collect(first)
    b.collect(second * 2)
    a.merge(b)
    assert a.compute_amax("minmax") == float(second.max()) * 2
