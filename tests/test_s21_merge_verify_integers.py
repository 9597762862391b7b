"""merge --verify compares integer outputs exactly (H202 left it): its tolerance is relative
to an output's largest value, so an index 1000001 where the original gives 1000000 passed."""

from __future__ import annotations

import math

import numpy as np

from graphopt.commands.merge import _difference


def test_an_integer_output_one_off_is_a_difference() -> None:
    expected = np.array([1_000_000, 3], np.int64)
    got = np.array([1_000_001, 3], np.int64)
    worst, scale = _difference(expected, got)
    assert worst > 1e-4 * max(1.0, scale)  # the check _verify makes


def test_equal_integer_outputs_are_no_difference() -> None:
    value = np.array([[7, 1_000_000]], np.int32)
    assert _difference(value, value.copy())[0] == 0.0


def test_float_outputs_keep_their_relative_tolerance() -> None:
    expected = np.array([1000.0, 1.0], np.float32)
    got = np.array([1000.01, 1.0], np.float32)
    worst, scale = _difference(expected, got)
    assert math.isclose(worst, 0.01, rel_tol=1e-2)
    assert scale == 1000.0
    assert worst <= 1e-4 * max(1.0, scale)
