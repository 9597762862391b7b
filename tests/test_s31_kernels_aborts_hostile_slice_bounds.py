"""inference_aborts' fold of computed sizes reads a Slice's bounds before its numpy kernel
(`_reversed_past_the_end`); bounds of a float type (not of Slice's schema, which the fold
checks for attributes and counts only) holding NaN or ±inf raised ValueError / OverflowError
out of `inference_abort` since the kernels replaced `_quick` (e2430cd; `_quick` cast them to
int64 unchecked). Such a node is now left to onnx's reference evaluator, as any node the
kernels do not take. Judged in a child process (the inference may abort)."""

from __future__ import annotations

import subprocess
import sys

import pytest

_CHILD = r"""
import sys
import numpy as np
from onnx import TensorProto as T, helper as h, numpy_helper as nh
from graphopt.analysis.inference_aborts import inference_abort

ints = lambda v, n: nh.from_array(np.array(v, np.int64), n)
start = nh.from_array(np.array([float(sys.argv[1])], np.float32), "start")
nodes = [
    h.make_node("Slice", ["c", "start", "eight"], ["pads"]),
    h.make_node("Pad", ["x", "pads"], ["p"]),
    h.make_node("Slice", ["p", "st", "en"], ["y"], name="cut"),
]
inits = [ints([0, 0, -5, 0, 0, 0, 0, 0, 9], "c"), start, ints([8], "eight"), ints([0], "st"),
         ints([1], "en")]
g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])],
                 [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
print("judged:", repr(inference_abort(m)))
"""


def _judge(start: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, start], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.mark.parametrize("start", ["nan", "inf", "-inf"])
def test_a_float_slice_bound_that_is_no_integer_is_judged_without_an_error(start: str) -> None:
    assert "judged: ''" in _judge(start)  # (not evaluated: the pads stay unknown)


def test_a_float_slice_bound_of_an_integer_value_is_evaluated() -> None:
    # the control: start 0 takes the pads [0, 0, -5, 0, ...] whole
    out = _judge("0")
    assert "judged: \"Slice 'cut' reads 'p' of shape [1, 3, -1, 4], a negative dimension" in out
