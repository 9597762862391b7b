"""bench's percentiles are nearest-rank: the pN it prints is a time some run took, and at
least N% of the runs took at most that (numpy's default interpolation broke both: the p99 of
bench's default 50 runs was exceeded by 2% of them)."""

from __future__ import annotations

import pytest

from graphopt.commands.bench import summarize


@pytest.mark.parametrize("n", [5, 50, 100, 7])
def test_percentiles_are_run_times_that_enough_runs_meet(n):
    seconds = [0.001 * i for i in range(1, n)] + [1.0]  # one slow run among n
    r = summarize("onnxruntime", "m", seconds, batch=1)
    ms = sorted(s * 1000.0 for s in seconds)
    for q, value in ((50, r.p50_ms), (90, r.p90_ms), (99, r.p99_ms)):
        assert any(value == pytest.approx(t) for t in ms), (q, value)
        assert sum(t <= value + 1e-9 for t in ms) >= q / 100 * n, (q, value)


def test_p99_of_five_runs_is_the_slowest():
    r = summarize("onnxruntime", "m", [0.001, 0.002, 0.003, 0.004, 0.1], batch=1)
    assert r.p99_ms == pytest.approx(100.0) and r.p90_ms == pytest.approx(100.0)
    assert r.p50_ms == pytest.approx(3.0)


def test_hundred_runs_nearest_rank():
    r = summarize("onnxruntime", "m", [0.001 * i for i in range(1, 101)], batch=2)
    assert (r.p50_ms, r.p90_ms, r.p99_ms) == pytest.approx((50.0, 90.0, 99.0))
