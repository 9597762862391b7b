"""bench_optimize's pytest-benchmark group "optimize {model}" times the floor, graphopt and
the peers the same way: the same rounds after the same untimed warm-up round.

The floor and graphopt's `default` ran 7 rounds with no warm-up, the first one cold
(imports, parsed rules, onnxruntime probes), next to peers timed on 5 rounds after a warm-up;
and `graphopt:ort-fusions`, one of compare_peers' tools, was missing from the group.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_optimize  # noqa: E402 - benchmarks/ is a folder of scripts, not a package
import compare_peers  # noqa: E402


class _Recorder:
    """Stands in for pytest-benchmark's fixture: runs the target once, keeps the settings."""

    def __init__(self) -> None:
        self.group = ""
        self.calls: list[dict[str, Any]] = []

    def pedantic(self, target: Callable[..., Any], args: tuple = (), **settings: Any) -> Any:
        self.calls.append({"group": self.group, **settings})
        return target(*args)


@pytest.mark.realmodel
def test_floor_ours_and_peers_share_rounds_and_warmup(tmp_path: Path) -> None:
    recorders = {"floor": _Recorder(), "default": _Recorder(), "onnxoptimizer": _Recorder()}
    bench_optimize.test_floor(recorders["floor"], "ppocr_det", tmp_path)
    bench_optimize.test_optimize_default(recorders["default"], "ppocr_det", tmp_path)
    bench_optimize.test_peer_optimize(
        recorders["onnxoptimizer"], "ppocr_det", "onnxoptimizer", tmp_path
    )
    settings = {name: r.calls for name, r in recorders.items()}
    expected = [{"group": "optimize ppocr_det", "rounds": 7, "warmup_rounds": 1}]
    assert settings == {name: expected for name in recorders}


def test_every_tool_of_compare_peers_is_in_the_group() -> None:
    others = set(compare_peers.all_tools()) - {"original", "graphopt:default"}
    assert others <= set(bench_optimize.PEERS)
