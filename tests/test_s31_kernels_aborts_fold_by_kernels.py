"""inference_aborts evaluates sizes computed from constants with constant folding's numpy
kernels (`graphopt.analysis.fold_kernels`), onnx's reference evaluator only for what they do
not take: slanet's Resize sizes go through Squeeze-13 (axes as an input), which the abort
check's own mini-kernels lacked, and each process's first judging imported and set up the
evaluator (~0.4 s). Judged in a child process (the inference may abort, and `sys.modules`
must be the child's own)."""

from __future__ import annotations

import subprocess
import sys

import pytest

_CHILD = r"""
import sys
import numpy as np
from onnx import TensorProto as T, helper as h, numpy_helper as nh
from graphopt.analysis.inference_aborts import inference_abort

how, fits = sys.argv[1], sys.argv[2] == "fitting"
ints = lambda v, n: nh.from_array(np.array(v, np.int64), n)
pads = [0, 0, 1, 1, 0, 0, 1, 1] if fits else [0, 0, -5, 0, 0, 0, 0, 0]
inits = [ints([0], "st"), ints([1], "en")]
if how == "squeeze":  # Squeeze-13: its axes an input
    nodes = [h.make_node("Squeeze", ["a", "axes"], ["pads"])]
    inits += [ints([pads], "a"), ints([0], "axes")]
else:  # Div, Shape (of a constant), Cast to bool, Where, Max and Min
    doubled = [2 * p for p in pads]
    nodes = [
        h.make_node("Div", ["twice", "two"], ["half"]),
        h.make_node("Shape", ["twice"], ["n"]),
        h.make_node("Cast", ["n"], ["any"], to=T.BOOL),
        h.make_node("Where", ["any", "half", "twice"], ["picked"]),
        h.make_node("Max", ["picked", "low"], ["m"]),
        h.make_node("Min", ["m", "high"], ["pads"]),
    ]
    inits += [ints(doubled, "twice"), ints([2], "two"),
              ints([-100], "low"), ints([100], "high")]
nodes += [h.make_node("Pad", ["x", "pads"], ["p"]), h.make_node("Slice", ["p", "st", "en"], ["y"])]
g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])],
                 [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
print("judged:", repr(inference_abort(m)))
print("reference evaluator:", "onnx.reference" in sys.modules)
"""


def _judge(how: str, case: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, how, case], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.mark.parametrize("how", ["squeeze", "div-shape-where-max-min"])
def test_negative_pads_are_found_without_the_reference_evaluator(how: str) -> None:
    out = _judge(how, "negative")
    assert "judged: \"Slice reads 'p' of shape [1, 3, -1, 4], a negative dimension" in out, out
    assert "reference evaluator: False" in out


@pytest.mark.parametrize("how", ["squeeze", "div-shape-where-max-min"])
def test_fitting_pads_are_accepted_without_the_reference_evaluator(how: str) -> None:
    out = _judge(how, "fitting")
    assert "judged: ''" in out
    assert "reference evaluator: False" in out
