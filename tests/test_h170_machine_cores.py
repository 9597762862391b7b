"""The benchmark write-ups state the machine's core count from the results file.

render_results wrote "shared 2-core machine" into results.md's lines and the chart's title
whatever `machine.cpu_count` the JSON held, and bench_optimize.machine_info wrote the same
"2-core" into every results file's note: a run on another machine would have been labelled
with this one's size.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_optimize  # noqa: E402 - benchmarks/ is a folder of scripts, not a package
import render_results  # noqa: E402


def _peers_on(cores: int) -> dict[str, Any]:
    peers = copy.deepcopy(json.loads((BENCHMARKS / "results" / "peers.json").read_text()))
    peers["machine"]["cpu_count"] = cores
    return peers


def test_results_md_states_the_core_count_of_the_json() -> None:
    assert "**shared 2-core machine** (Intel" in render_results.render_markdown(_peers_on(2), None)
    text = render_results.render_markdown(_peers_on(16), None)
    assert "**shared 16-core machine** (" in text and "2-core" not in text


def test_the_chart_title_states_the_core_count_of_the_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)
    render_results.render_chart(_peers_on(16), tmp_path / "peers.png")
    (figure,) = figures
    assert (
        figure._suptitle.get_text() == "graphopt vs peers (shared 16-core machine; see results.md)"
    )
    plt.close(figure)


def test_machine_info_notes_this_machines_core_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    info = bench_optimize.machine_info()
    assert info["cpu_count"] == 16
    assert "shared 16-core machine" in info["note"]
