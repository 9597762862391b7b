"""render_results shows a failed peer as failed everywhere it shows the others' figures.

The README's summary table rendered a tool that failed on a model as "—", the mark of a tool
that was not run there, and results.md's millisecond and max-difference tables did the same;
the chart left its bar out with nothing in its place. Made from the committed peers.json
with one peer failed on one model and one graphopt session failed at one level.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import render_results  # noqa: E402 - benchmarks/ is a folder of scripts, not a package


def _peers_with_failures() -> dict[str, Any]:
    peers = json.loads((BENCHMARKS / "results" / "peers.json").read_text())
    peers = copy.deepcopy(peers)
    peers["models"]["ppocr_det"]["tools"]["onnxsim"] = {"error": "failed: RuntimeError: boom"}
    row = peers["models"]["layout_cdla"]["tools"]["graphopt:default"]
    row["latency"]["disable"] = {"error": "failed: BackendError: cannot run"}
    del row["max_diff"]["disable"]
    return peers


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_the_readme_table_says_failed_where_a_peer_failed() -> None:
    block = render_results.readme_block(_peers_with_failures())
    onnxsim = _line(block, "| onnxsim |")
    # nodes, latency at both levels and optimize time: common_det / layout_cdla / failed
    assert (
        onnxsim
        == "| onnxsim | 275 / 521 / failed | 0.92 / 0.96 / failed | 1.41 / 1.38 / failed | 3.2 / 5.8 / failed |"
    )
    default = _line(block, "| graphopt `default` |")
    assert "| 1.45 / failed / 1.06 |" in default


def test_results_md_says_failed_in_the_ms_and_max_difference_tables() -> None:
    text = render_results.render_markdown(_peers_with_failures(), None)
    ms = text.split("**Median latency in ms")[1]
    assert _line(ms, "| onnxsim |").endswith("| failed |")
    assert "/ failed |" in _line(ms, "| graphopt:default |")
    diff = text.split("**Max output difference**")[1]
    assert _line(diff, "| onnxsim |").endswith("| failed |")
    assert "| failed / 8.2e-06 |" in _line(diff, "| graphopt:default |")


def test_the_chart_marks_a_failed_bar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)
    render_results.render_chart(_peers_with_failures(), tmp_path / "peers.png")
    (figure,) = figures
    marks = [[t.get_text() for t in ax.texts] for ax in figure.axes]
    # ENABLE_ALL: onnxsim on ppocr_det; DISABLE_ALL: that and graphopt:default on layout_cdla;
    # node counts: onnxsim on ppocr_det
    assert marks == [["failed"], ["failed", "failed"], ["failed"]]
    plt.close(figure)
