"""inference_aborts' fold of computed sizes left a Slice whose end is INT_MAX (2^63 - 1, or
2^31 - 1) with a negative step to onnx's reference evaluator, which reads that end as ONNX
defines it (clamped to the axis's last index: Slice(c, [-1], [INT_MAX], [0], [-1]) is empty),
where onnxruntime's constant folding slices to the start (c reversed whole). Reversed pads
[0, 0, 0, 0, 0, 0, -5, 0] were so judged unknown ('') while onnxruntime's loader aborted the
process on the Slice after the Pad (SIGABRT: `graphopt bench` died). Such an end is now read
as onnxruntime reads it. Run in child processes (the loader aborts)."""

from __future__ import annotations

import pytest

from tests.child_process import bench_once, one_line_refusal, stdout_of

_MODEL = r"""
import sys
import numpy as np
import onnx
from onnx import TensorProto as T, helper as h, numpy_helper as nh

pads, end, dtype = eval(sys.argv[1]), int(sys.argv[2]), np.dtype(sys.argv[3])
given = lambda v, n: nh.from_array(np.array(v, dtype), n)
ints = lambda v, n: nh.from_array(np.array(v, np.int64), n)
nodes = [
    h.make_node("Slice", ["c", "s0", "e0", "a0", "k0"], ["pads"]),
    h.make_node("Pad", ["x", "pads"], ["p"]),
    h.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
]
inits = [ints(pads, "c"), given([-1], "s0"), given([end], "e0"), given([0], "a0"),
         given([-1], "k0"), ints([0], "st"), ints([1], "en"), ints([2], "ax")]
g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])],
                 [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
"""
_JUDGE = (
    _MODEL
    + "from graphopt.analysis.inference_aborts import inference_abort\n"
    + "print('judged:', repr(inference_abort(m)))\n"
)
_SAVE = _MODEL + "onnx.save(m, sys.argv[4])\n"

_REVERSED_NEGATIVE = "[0, -5, 0, 0, 0, 0, 0, 0]"  # reversed: [0, 0, 0, 0, 0, 0, -5, 0]
_CUT = "judged: \"Slice 'cut' reads 'p' of shape [1, 3, -1, 4], a negative dimension"


@pytest.mark.parametrize(
    ("end", "dtype"),
    [(2**63 - 1, "int64"), (2**31 - 1, "int64"), (2**31 - 1, "int32")],
)
def test_an_int_max_end_with_a_negative_step_slices_to_the_start(end: int, dtype: str) -> None:
    assert _CUT in stdout_of(_JUDGE, _REVERSED_NEGATIVE, str(end), dtype)


def test_the_ends_type_minimum_slices_to_the_start_as_before() -> None:
    # (the control: read by the kernels on the parent too)
    assert _CUT in stdout_of(_JUDGE, _REVERSED_NEGATIVE, str(-(2**63)), "int64")


@pytest.mark.parametrize("end", [100, 2**63 - 2])
def test_other_ends_past_the_axis_stop_at_its_last_index(end: int) -> None:
    # an empty Slice, as onnxruntime folds it too (it then refuses the Pad's 0 pads)
    assert "judged: ''" in stdout_of(_JUDGE, _REVERSED_NEGATIVE, str(end), "int64")


def test_fitting_pads_reversed_to_the_start_are_no_risk() -> None:
    assert "judged: ''" in stdout_of(_JUDGE, "[0, 1, 0, 0, 0, 0, 0, 0]", str(2**63 - 1), "int64")


def test_bench_refuses_in_one_line_where_the_loader_aborted(tmp_path) -> None:
    path = tmp_path / "reversed.onnx"
    stdout_of(_SAVE, _REVERSED_NEGATIVE, str(2**63 - 1), "int64", str(path))
    line = one_line_refusal(bench_once(path))
    assert "Slice 'cut' reads 'p' of shape [1, 3, -1, 4], a negative dimension" in line
