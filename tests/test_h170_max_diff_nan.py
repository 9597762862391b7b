"""compare_peers' max output difference does not drop a NaN (Python's `max(d, nan)` is `d`).

A tool whose output holds a NaN where the original's holds a number came out with the
difference of its other elements, as if it matched; the result is now NaN.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import compare_peers  # benchmarks/ is a folder of scripts, not a package


def _real_outputs() -> list[list[np.ndarray]]:
    """layout_cdla's eight outputs on two real photographs, at ORT_DISABLE_ALL."""
    from graphopt.backends.onnxruntime import session
    from graphopt.realmodels import fetch_model, model_inputs

    sess = session(fetch_model("layout_cdla"), threads=2, level="disable")
    return [sess.run(None, feed) for feed in model_inputs("layout_cdla", 2)]


@pytest.mark.realmodel
def test_a_nan_in_a_tools_output_is_a_nan_difference_not_a_match() -> None:
    reference = _real_outputs()
    assert compare_peers.max_rel_diff(reference, reference) == 0.0
    got = [[o.copy() for o in outs] for outs in reference]
    got[1][5][0, 17, 3] = np.nan  # one element of the second image's sixth output
    assert math.isnan(compare_peers.max_rel_diff(reference, got))
    # a NaN next to a real difference in another output is not hidden behind it either
    got[0][0] *= 1.001
    assert math.isnan(compare_peers.max_rel_diff(reference, got))


def test_the_same_nan_or_infinity_on_both_sides_is_no_difference() -> None:
    ref = [[np.array([1.0, np.nan, np.inf, -2.0], np.float32)]]
    same = [[np.array([1.0, np.nan, np.inf, -2.0], np.float32)]]
    assert compare_peers.max_rel_diff(ref, same) == 0.0
    off = [[np.array([1.0, np.nan, np.inf, -1.0], np.float32)]]
    assert compare_peers.max_rel_diff(ref, off) == 0.5  # |−2 − −1| / max finite |a| = 2
    nan_in_reference_only = [[np.array([1.0, 0.0, np.inf, -2.0], np.float32)]]
    assert math.isnan(compare_peers.max_rel_diff(ref, nan_in_reference_only))
