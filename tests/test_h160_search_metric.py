"""The accuracy search's error measure on common_det and real photographs: a NaN output or a
NaN / negative / non-number `error_metric` result is not taken for "no error"."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

from graphopt.errors import QuantizeError
from graphopt.quant.api import quantize_with_report
from graphopt.quant.collect import run_outputs
from graphopt.quant.sensitivity import relative_error

pytestmark = pytest.mark.realmodel


def test_relative_error_counts_a_nan_output_as_infinite(real_model, real_feeds) -> None:  # type: ignore[no-untyped-def]
    feeds = real_feeds("common_det", 2)
    ref = run_outputs(onnx.load(str(real_model("common_det"))), feeds)
    (name,) = ref[0]
    got = [{name: r[name].copy()} for r in ref]
    assert relative_error(ref, got) == 0.0
    got[1][name].flat[7] = np.nan  # one NaN: the max used to drop it and measure 0.0
    assert relative_error(ref, got) == math.inf
    got[1][name][...] = np.nan
    assert relative_error(ref, got) == math.inf
    # where FP32 itself holds the same NaN or infinity, that element is no error
    both = [{name: r[name].copy()} for r in ref]
    for r in (ref, both):
        r[0][name].flat[3] = np.nan
        r[0][name].flat[4] = -np.inf
    assert relative_error(ref, both) == 0.0


@pytest.mark.parametrize("result", [math.nan, -0.5, None, np.array([0.1, 0.2]), "0.1"])
def test_an_error_metric_that_returns_no_error_is_refused(real_model, real_feeds, result) -> None:  # type: ignore[no-untyped-def]
    """A NaN compared false with the target: the search kept nothing float, logged the target as
    met, and reported error nan; None or an array failed inside the search with a TypeError."""
    with pytest.raises(QuantizeError, match=r"^error_metric returned .*: it must return"):
        quantize_with_report(
            str(real_model("common_det")),
            real_feeds("common_det", 2),
            method="minmax",
            accuracy_target=0.01,
            error_metric=lambda ref, got: result,
        )


def test_an_error_metric_that_raises_is_not_masked(real_model, real_feeds) -> None:  # type: ignore[no-untyped-def]
    def broken(ref, got):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("the caller's own bug")

    with pytest.raises(ZeroDivisionError, match="the caller's own bug"):
        quantize_with_report(
            str(real_model("common_det")),
            real_feeds("common_det", 2),
            method="minmax",
            error_metric=broken,
        )


def test_a_numpy_scalar_error_metric_is_taken(real_model, real_feeds) -> None:  # type: ignore[no-untyped-def]
    feeds = real_feeds("common_det", 2)
    _, report = quantize_with_report(
        str(real_model("common_det")),
        feeds,
        method="minmax",
        accuracy_target=0.05,
        error_metric=lambda ref, got: np.float32(relative_error(ref, got)),
    )
    assert report.error is not None and 0.0 < report.error <= 0.05
    assert report.kept_float == []
