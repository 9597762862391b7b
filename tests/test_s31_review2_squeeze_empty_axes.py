"""inference_aborts' fold of computed sizes left a Squeeze (opset 13 on) given an empty axes
tensor to onnx's reference evaluator (the kernels leave it: ONNX reads "no axes" there),
which squeezes no dim, where onnxruntime's constant folding squeezes every dim of 1. Pads of
shape [1, 8] squeezed so were judged 2-D, unknown to the Pad; onnxruntime folds them to
[0, 0, -5, ...], and its loader's inference of the Slice after the Pad aborted the process
(SIGABRT: `graphopt bench` died, `graphopt check` said 0 errors) where inference_abort said
''. Such a Squeeze is now folded as onnxruntime does. Run in child processes (the loader
aborts)."""

from __future__ import annotations

import pytest

from tests.child_process import bench_once, one_line_refusal, stdout_of

_MODEL = r"""
import sys
import numpy as np
import onnx
from onnx import TensorProto as T, helper as h, numpy_helper as nh

ints = lambda v, n: nh.from_array(np.array(v, np.int64), n)
pads, axes = eval(sys.argv[1]), eval(sys.argv[2])
nodes = [
    h.make_node("Squeeze", ["c", "axes"], ["pads"]),
    h.make_node("Pad", ["x", "pads"], ["p"]),
    h.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
]
inits = [ints([pads], "c"), nh.from_array(np.array(axes, np.int64).reshape(-1), "axes"),
         ints([0], "st"), ints([1], "en"), ints([2], "ax")]
g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])],
                 [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
"""
_JUDGE = (
    _MODEL
    + "from graphopt.analysis.inference_aborts import inference_abort\n"
    + "print('judged:', repr(inference_abort(m)))\n"
)
_SAVE = _MODEL + "onnx.save(m, sys.argv[3])\n"

_NEGATIVE = "[0, 0, -5, 0, 0, 0, 0, 0]"
_CUT = "judged: \"Slice 'cut' reads 'p' of shape [1, 3, -1, 4], a negative dimension"


@pytest.mark.parametrize("axes", ["[]", "[0]"])
def test_pads_squeezed_by_empty_or_given_axes_are_judged(axes: str) -> None:
    # ("[0]": the kernels' case, named on the parent too)
    assert _CUT in stdout_of(_JUDGE, _NEGATIVE, axes)


def test_fitting_pads_squeezed_by_empty_axes_are_no_risk() -> None:
    assert "judged: ''" in stdout_of(_JUDGE, "[0, 0, 1, 0, 0, 0, 1, 0]", "[]")


def test_bench_refuses_in_one_line_where_the_loader_aborted(tmp_path) -> None:
    path = tmp_path / "squeezed.onnx"
    stdout_of(_SAVE, _NEGATIVE, "[]", str(path))
    line = one_line_refusal(bench_once(path))
    assert "Slice 'cut' reads 'p' of shape [1, 3, -1, 4], a negative dimension" in line
