"""inference_aborts and Shape-computed sizes inside a local function: onnxruntime inlines the
function, folds Shape(Relu(a)) of the known dims and the pads computed from it, and its
inference aborts (SIGABRT, `graphopt bench`) on the graph's Slice of the negative dim the
function's Pad makes. `negative_slice` judged such sizes in the main graph only, so the model
passed. Every load runs in a child process.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis.inference_aborts import inference_abort
from tests.child_process import bench_once, one_line_refusal


def _int64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _called(less: int) -> onnx.ModelProto:
    """p = ShapePad(x): x [1, 3, 4, 4] padded by [0, 0, less − 4, less − 4] twice, those from
    Shape(Relu(x), start=2); a Slice 'cut' of p on axis 2."""
    body = [
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Shape", ["r"], ["hw"], start=2),
        helper.make_node("Constant", [], ["less"], value=_int64("v", [less, less])),
        helper.make_node("Sub", ["less", "hw"], ["n_hw"]),
        helper.make_node("Constant", [], ["z"], value=_int64("v", [0, 0])),
        helper.make_node("Concat", ["z", "n_hw", "z", "n_hw"], ["pads"], axis=0),
        helper.make_node("Pad", ["a", "pads"], ["b"], name="pad"),
    ]
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("local", 1)]
    function = helper.make_function("local", "ShapePad", ["a"], ["b"], body, opsets)
    graph = helper.make_graph(
        [
            helper.make_node("ShapePad", ["x"], ["p"], domain="local", name="call"),
            helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_int64("st", [0]), _int64("en", [1]), _int64("ax", [2])],
    )
    return helper.make_model(graph, opset_imports=opsets, functions=[function])


def test_such_pads_in_a_function_are_foreseen() -> None:
    reason = inference_abort(_called(0))
    assert reason.startswith(
        "Slice 'cut' reads 'p' of shape [1, 3, -4, -4], a negative dimension "
        "(Pad 'ShapePad/pad' makes it)"
    ), reason


@pytest.mark.parametrize("less, refused", [(0, True), (3, False)])  # [1, 3, 2, 2] fits
def test_bench_refuses_it_in_one_line_not_an_abort(tmp_path, less: int, refused: bool) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_called(less), path)
    done = bench_once(path)
    if not refused:
        assert done.returncode == 0, done.stderr[-300:]
        return
    line = one_line_refusal(done)
    assert "Slice 'cut' reads 'p' of shape [1, 3, -4, -4]" in line, line
