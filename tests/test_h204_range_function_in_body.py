"""A Range whose length onnxruntime versions count apart, in a model-local function called
from an If/Loop body (H204).

Range(-0.1, 0.20000002, 0.3) of float32 is 1 element to ONNX inference and 2 in onnxruntime
1.32. 702700b made `dims_in_dispute` look into bodies and the functions called there
(`_holds_disputed_range`); 49f1c35 skipped that walk where `range_free_bodies` found no
Range op in any body, which did not count a body's call of a function holding one: the
Loop's output had inference's count again, eliminate-noops dropped Slice(Squeeze(y, [0]),
0, 1) as a no-op, and the result gave 2 elements where the original gives 1 (default
pipeline too; and one level down, a body's context told NO_RANGE_IN_BODIES)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

from tests import test_h198_disputed_range_in_bodies as disputed
from tests.test_h198_disputed_range_in_bodies import BOOL, F32, I64, _model, _range, vi

LOCAL = oh.make_opsetid("local", 1)


def _function() -> onnx.FunctionProto:
    return oh.make_function("local", "R", [], ["r"], _range("f", "r"), [oh.make_opsetid("", 13)])


def _loop_body(nodes: list[onnx.NodeProto], out: str) -> onnx.GraphProto:
    return oh.make_graph(
        [oh.make_node("Identity", ["cond_in"], ["cond_out"]), *nodes],
        "body",
        [vi("i", I64, []), vi("cond_in", BOOL, [])],
        [vi("cond_out", BOOL, []), vi(out, F32, ["p"])],
    )


def call_in_a_loop_body() -> onnx.ModelProto:
    """y = Loop(body: o = R()), R a local function returning the Range; the Slice in the main
    graph."""
    body = _loop_body([oh.make_node("R", [], ["o"], domain="local")], "o")
    return _model([oh.make_node("Loop", ["trips", ""], ["y"], body=body)], [_function()], [LOCAL])


def call_in_a_loop_in_a_loop_body() -> onnx.ModelProto:
    """The call in a Loop in another Loop's body, and a Slice of it in that outer body (run as
    a model of its own, told by the main graph what its bodies hold), and in the main graph."""
    inner = oh.make_graph(
        [
            oh.make_node("Identity", ["c_in"], ["c_out"]),
            oh.make_node("R", [], ["r"], domain="local"),
        ],
        "inner",
        [vi("j", I64, []), vi("c_in", BOOL, [])],
        [vi("c_out", BOOL, []), vi("r", F32, ["p"])],
    )
    ints = {"t1": 1, "a0": [0], "s0": [0], "e1": [1]}
    constants = [
        oh.make_node("Constant", [], [k], value=numpy_helper.from_array(np.array(v, np.int64)))
        for k, v in ints.items()
    ]
    body = _loop_body(
        [
            *constants,
            oh.make_node("Loop", ["t1", ""], ["scanned"], body=inner),
            oh.make_node("Squeeze", ["scanned", "a0"], ["q0"]),
            oh.make_node("Slice", ["q0", "s0", "e1"], ["o"]),
        ],
        "o",
    )
    return _model([oh.make_node("Loop", ["trips", ""], ["y"], body=body)], [_function()], [LOCAL])


CASES = {"loop": call_in_a_loop_body, "loop-in-loop": call_in_a_loop_in_a_loop_body}


@pytest.mark.parametrize("pipeline", ["eliminate-noops", "default"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_slice_of_a_range_from_a_function_called_in_a_body_is_kept(
    case: str, pipeline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """H198's check (the Slice kept, in the outer body too for loop-in-loop; outputs equal at
    ORT_DISABLE_ALL and ORT_ENABLE_ALL, 1 element) over these models."""
    monkeypatch.setitem(disputed.CASES, case, CASES[case])
    disputed.test_a_slice_of_a_body_range_counted_apart_is_kept(case, pipeline)
