"""compare_peers matches a tool's outputs to the original's by name, not by position.

A tool may list a model's graph outputs in another order (ONNX outputs are named); the max
difference paired them by position, so layout_cdla with its outputs listed in reverse came
out infinitely different (another shape) although every output is the original's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import compare_peers  # benchmarks/ is a folder of scripts, not a package


def _reversed_outputs(src: Path, dst: Path) -> None:
    model = onnx.load(str(src))
    outputs = list(model.graph.output)[::-1]
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    onnx.save(model, str(dst))


@pytest.mark.slow
@pytest.mark.realmodel
def test_reordered_outputs_are_no_difference(real_model, real_feeds, tmp_path: Path) -> None:
    tools = {"original": compare_peers._copy, "reversed": _reversed_outputs}
    settings = compare_peers.Settings(runs=1, opt_runs=1, images=1, isolate=False)
    result = compare_peers.compare_model(
        "layout_cdla",
        real_model("layout_cdla"),
        real_feeds("layout_cdla", 1),
        tmp_path,
        tools,
        settings,
    )
    rows = result["tools"]
    assert rows["reversed"]["max_diff"]["disable"] == 0.0
    assert rows["reversed"]["max_diff"]["all"] == rows["original"]["max_diff"]["all"] < 1e-4
