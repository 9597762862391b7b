"""The latency chart's bars start at 0, so a bar's length is the ratio the table gives.

render_chart set the latency axes' bottom near the lowest p25 (0.3 for the committed run):
bars are drawn from 0, so on layout_cdla graphopt's 0.45 showed as 0.15 of axis above the
cut against the original's 0.70, a fifth of its length for a ratio under a half.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import render_results  # noqa: E402 - benchmarks/ is a folder of scripts, not a package


def test_latency_bars_are_the_tables_ratios_drawn_from_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = json.loads((BENCHMARKS / "results" / "peers.json").read_text())
    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)
    render_results.render_chart(peers, tmp_path / "peers.png")
    (figure,) = figures
    models = list(peers["models"])
    for ax, level in zip(figure.axes[:2], ("all", "disable"), strict=True):
        assert ax.get_ylim()[0] == 0.0
        for container in ax.containers:
            tool = container.get_label()
            if tool.startswith("_"):  # the error bars' own container
                continue
            for rect, model in zip(container.patches, models, strict=True):
                ratio = peers["models"][model]["tools"][tool]["latency"][level]["ratio"]
                assert rect.get_y() == 0.0
                assert rect.get_height() == pytest.approx(ratio)
    plt.close(figure)
