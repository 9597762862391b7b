"""inference_aborts evaluates a computed size through Squeeze (and the other ops constant
folding's numpy kernels cover) without onnx's reference evaluator.

slanet's Resize sizes go through Squeeze-13 (axes as an input), which `_quick` has not: each
first judging imported and set up the reference evaluator (~0.4 s of ~0.9 s; the session's
first version took 0.05 s). Judged in a child process (the inference may abort).
"""

from __future__ import annotations

import subprocess
import sys

_CHILD = r"""
import sys
import numpy as np
from onnx import TensorProto as T, helper as h, numpy_helper as nh
from graphopt.analysis.inference_aborts import inference_abort

ints = lambda v, n: nh.from_array(np.array(v, np.int64), n)
pads = [0, 0, -5, 0, 0, 0, 0, 0] if sys.argv[1] == "negative" else [0, 0, 1, 1, 0, 0, 1, 1]
nodes = [
    h.make_node("Squeeze", ["a", "axes"], ["pads"]),
    h.make_node("Pad", ["x", "pads"], ["p"]),
    h.make_node("Slice", ["p", "st", "en"], ["y"]),
]
inits = [ints([pads], "a"), ints([0], "axes"), ints([0], "st"), ints([1], "en")]
g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])],
                 [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
print("judged:", repr(inference_abort(m)))
print("reference evaluator:", "onnx.reference" in sys.modules)
"""


def _judge(case: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, case], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_negative_pads_through_squeeze_are_found_without_the_reference_evaluator() -> None:
    out = _judge("negative")
    assert "negative dimension" in out
    assert "reference evaluator: False" in out


def test_fitting_pads_through_squeeze_are_accepted_without_the_reference_evaluator() -> None:
    out = _judge("fitting")
    assert "judged: ''" in out
    assert "reference evaluator: False" in out
