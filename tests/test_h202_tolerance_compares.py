"""merge --tolerance compares a weight in full only with the weights near it.

With the nearest weight taken (aa5ba54), every weight of a model was compared element by
element with every weight of that shape of the models before it: 100 weights of 512 x 512
against 100 took 67 s (35 s when the first within the tolerance was taken). A lower bound from
256 elements spread over each weight passes over the far ones first: 1.2 s. Counted here as the
full comparisons made (no wall-clock assert), and the identities are those of a full search.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.multitask import hashing
from graphopt.multitask.hashing import ConstantTable


def test_only_the_near_weight_is_compared_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    full = hashing._distance

    def counted(a: np.ndarray, b: np.ndarray) -> float:
        calls.append(1)
        return full(a, b)

    monkeypatch.setattr(hashing, "_distance", counted)
    rng = np.random.default_rng(202)
    weights = [rng.standard_normal((64, 64)).astype(np.float32) for _ in range(20)]
    table = ConstantTable(tolerance=1e-3)
    first = [table.key(w, owner=0) for w in weights]
    assert len(set(first)) == 20 and not calls  # one model's own are never compared
    second = [table.key(w * np.float32(1 + 1e-5), owner=1) for w in weights]
    assert second == first  # each met its own twin
    assert len(calls) == 20  # and only its twin in full (it was 20 x 20)


def test_non_finite_entries_are_still_compared_in_full() -> None:
    table = ConstantTable(tolerance=1e-3)
    a = np.array([1.0, np.nan, np.inf, 2.0], np.float32)
    first = table.key(a, owner=0)
    assert table.key(a * np.float32(1 + 1e-5), owner=1) == first  # NaN and inf in place
    b = np.array([1.0, np.nan, -np.inf, 2.0], np.float32)
    assert table.key(b, owner=1) != first  # another infinity
