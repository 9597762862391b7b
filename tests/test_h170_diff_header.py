"""results.md's max-difference header says how compare_peers computes the figure.

It said "max |a−b| / max |a| over all outputs and 4 real images", which reads as one scale,
the largest |a| of any output; compare_peers.max_rel_diff scales each output by its own range
and reports the largest of those ratios (layout_cdla's scores in 0..1 next to box outputs in
the tens: one common scale would shrink the scores' differences).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compare_peers  # noqa: E402 - benchmarks/ is a folder of scripts, not a package
import render_results  # noqa: E402


def test_the_header_says_each_output_is_scaled_by_its_own_range() -> None:
    peers = json.loads((BENCHMARKS / "results" / "peers.json").read_text())
    text = render_results.render_markdown(peers, None)
    header = next(line for line in text.splitlines() if "**Max output difference**" in line)
    assert (
        "per output, max |a−b| / max |a| over 4 real images, the largest over the outputs" in header
    )
    # what the header describes is what max_rel_diff computes: a score output off by 0.01 on
    # a 0..1 range next to a box output in the tens is 1e-2, not 1e-2 / 40
    reference = [[np.array([0.2, 1.0]), np.array([40.0, 3.0])]]
    got = [[np.array([0.21, 1.0]), np.array([40.0, 3.0])]]
    assert compare_peers.max_rel_diff(reference, got) == pytest.approx(0.01)
