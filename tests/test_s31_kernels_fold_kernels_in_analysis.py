"""Constant folding's numpy kernels (`KERNELS`, `Unsupported`, `onnx_slice`, ...) sit in the
analysis layer (`graphopt.analysis.fold_kernels`), which they need alone (op kinds, errors):
analysis modules may use them without importing the pass layer, which STYLE.md puts above
analysis (tests/test_review12_ir_analysis_layers.py). Imported in a child process so that
the modules it loads are its own."""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = r"""
import json, sys
from graphopt.analysis.fold_kernels import KERNELS, Unsupported, evaluate, onnx_slice
print(json.dumps({
    "loaded": sorted(m for m in sys.modules if m.startswith("graphopt.")),
    "kernels": sorted(KERNELS),
}))
"""

_ABOVE_ANALYSIS = ("graphopt.passes", "graphopt.patterns", "graphopt.quant", "graphopt.pipeline")


def _child() -> dict[str, list[str]]:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_fold_kernels_load_without_the_pass_layer() -> None:
    got = _child()
    assert "graphopt.analysis.fold_kernels" in got["loaded"]
    above = [m for m in got["loaded"] if m.startswith(_ABOVE_ANALYSIS)]
    assert above == []
    # the kernels themselves came along (the shape-arithmetic ops constant folding evaluates)
    assert {"Squeeze", "Shape", "Div", "Where", "Min", "Max", "Slice"} <= set(got["kernels"])
