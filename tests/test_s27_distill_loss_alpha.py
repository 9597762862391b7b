"""distillation_loss refuses an alpha that is no weight in [0, 1]: alpha=70 (a percentage), -1
or NaN gave a loss without a word (α·KD + (1 − α)·CE with a negative weight on one term, which
training minimizes by making that term worse; NaN everywhere). 0 and 1 are the ends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graphopt.distill import DistillError, distillation_loss, kd_kl_loss, softmax


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.array([[0.0, math.log(3.0)]])
    return s, np.array([[0.5, 0.5]]), np.array([1])


@pytest.mark.parametrize("alpha", [70, -1.0, 1.5, float("nan"), "0.5", None])
def test_an_alpha_that_is_no_weight_is_refused(alpha) -> None:
    s, p, labels = _case()
    with pytest.raises(DistillError, match=r"^alpha must be a weight in \[0, 1\], got "):
        distillation_loss(s, p, labels, alpha=alpha)


def test_the_ends_and_a_numpy_weight_are_taken() -> None:
    s, p, labels = _case()
    kd, ce = kd_kl_loss(s, p), -math.log(0.75)
    assert distillation_loss(s, p, labels, alpha=0) == pytest.approx(ce)
    assert distillation_loss(s, p, labels, alpha=1) == pytest.approx(kd)
    assert distillation_loss(s, p, labels, alpha=np.float32(0.25)) == pytest.approx(
        0.25 * kd + 0.75 * ce
    )
    assert distillation_loss(s, softmax(s), None, alpha=0.5) == pytest.approx(0.0, abs=1e-12)
