"""inference_aborts and sizes computed from constants alone: onnx's inference of a Pad whose
pads come through Identity, Concat (or PyTorch's export of F.pad: ConstantOfShape, Concat,
Reshape, a reversing Slice, Transpose, Cast) knows no pads, but onnxruntime's constant folding
makes them an initializer before its own inference runs, which then makes the negative dim a
Slice reads: its loader aborted (SIGABRT) where `inference_abort` saw nothing, and `graphopt
bench` (a session) died with it. Every load runs in a child process.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis.inference_aborts import inference_abort
from tests.child_process import bench_once, one_line_refusal

_I64_MIN = -(2**63) + 1  # PyTorch's "to the start" Slice end


def _int64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _const(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=_int64(name, values))


def _padded(pads: list[onnx.NodeProto], inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    """`pads` make "pads" from constants; a Pad 'pad' of x [1, 3, 4, 4] by them, then a Slice
    'cut' of its output on axis 2."""
    nodes = [
        *pads,
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
        helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [*inits, _int64("st", [0]), _int64("en", [1]), _int64("ax", [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _torch_pads(begin_end_h: int) -> list[onnx.NodeProto]:
    """PyTorch's F.pad(x, (0, 0, h, h)) pads: [0, 0, h, 0, 0, 0, h, 0] at the end."""
    h = begin_end_h
    return [
        _const("raw", [0, 0, h, h]),
        _const("four", [4]),
        helper.make_node("ConstantOfShape", ["four"], ["zeros"], value=_int64("v", [0])),
        helper.make_node("Concat", ["raw", "zeros"], ["both"], axis=0),
        _const("pairs", [-1, 2]),
        helper.make_node("Reshape", ["both", "pairs"], ["rows"]),
        _const("s0", [-1]),
        _const("s1", [_I64_MIN]),
        _const("s2", [0]),
        _const("s3", [-1]),
        helper.make_node("Slice", ["rows", "s0", "s1", "s2", "s3"], ["reversed"]),
        helper.make_node("Transpose", ["reversed"], ["cols"], perm=[1, 0]),
        _const("flat", [-1]),
        helper.make_node("Reshape", ["cols", "flat"], ["long"]),
        helper.make_node("Cast", ["long"], ["pads"], to=TensorProto.INT64),
    ]


ABORTING = {
    "identity": _padded(
        [helper.make_node("Identity", ["pads0"], ["pads"])], [_int64("pads0", [0, 0, -5, 0] * 2)]
    ),
    "concat": _padded(
        [helper.make_node("Concat", ["a", "b"], ["pads"], axis=0)],
        [_int64("a", [0, 0, -5, 0]), _int64("b", [0, 0, -5, 0])],
    ),
    "torch-export": _padded(_torch_pads(-5), []),
}


@pytest.mark.parametrize("case", sorted(ABORTING))
def test_negative_pads_computed_from_constants_are_foreseen(case: str) -> None:
    reason = inference_abort(ABORTING[case])
    assert reason.startswith(
        "Slice 'cut' reads 'p' of shape [1, 3, -6, 4], a negative dimension (Pad 'pad' makes it)"
    ), reason


@pytest.mark.parametrize("case", sorted(ABORTING))
def test_bench_of_such_a_model_is_refused_not_an_abort(tmp_path, case: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(ABORTING[case], path)
    line = one_line_refusal(bench_once(path))
    assert "Slice 'cut' reads 'p' of shape [1, 3, -6, 4]" in line, line


def test_the_model_itself_is_not_changed() -> None:
    model = ABORTING["torch-export"]
    before = model.SerializeToString()
    assert inference_abort(model)
    assert model.SerializeToString() == before


def test_pads_computed_from_constants_that_fit_are_not_refused(tmp_path) -> None:
    # the same export with h = −1: [1, 3, 2, 4]
    model = _padded(_torch_pads(-1), [])
    assert inference_abort(model) == ""
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    done = bench_once(path)
    assert done.returncode == 0, done.stderr[-300:]


def test_an_integer_division_by_zero_is_not_evaluated() -> None:
    # pads = a // 0: no value the runtimes agree on (onnxruntime dies of SIGFPE folding it), so
    # no value is made up for it (numpy's would be 0)
    model = _padded(
        [
            helper.make_node("Div", ["a", "zero"], ["q"]),
            helper.make_node("Sub", ["q", "ten"], ["pads"]),
        ],
        [_int64("a", [0] * 8), _int64("zero", [0]), _int64("ten", [0, 0, 10, 0] * 2)],
    )
    assert inference_abort(model) == ""
