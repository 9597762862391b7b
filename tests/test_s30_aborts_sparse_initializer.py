"""inference_aborts and sparse initializers: onnx's shape inference types no tensor from a
sparse initializer, but onnxruntime makes them dense before its own inference. A Conv whose
weight is one, with a window larger than its input, or a Pad whose pads are one, then makes a
negative dim that a Slice reads: onnxruntime's loader aborts (SIGABRT) where `inference_abort`
saw nothing, and `graphopt bench` died with it. Every load runs in a child process.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis.inference_aborts import inference_abort
from tests.child_process import bench_once, one_line_refusal


def _int64(name: str, values: list[int] | list[list[int]]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _sliced(node: onnx.NodeProto, sparse: onnx.SparseTensorProto, x: list[int]) -> onnx.ModelProto:
    """`node` makes "p" from x and the sparse initializer; a Slice 'cut' of "p" on axis 2."""
    cut = helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut")
    graph = helper.make_graph(
        [node, cut],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_int64("st", [0]), _int64("en", [1]), _int64("ax", [2])],
        sparse_initializer=[sparse],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _conv(x: list[int]) -> onnx.ModelProto:
    # a 2×3×3×3 weight with one value; no kernel_shape: the window is the weight's dims
    values = numpy_helper.from_array(np.array([1.0], np.float32), "w")
    sparse = helper.make_sparse_tensor(values, _int64("w_at", [0]), [2, 3, 3, 3])
    return _sliced(helper.make_node("Conv", ["x", "w"], ["p"], name="conv"), sparse, x)


def _pad(indices: list[int] | list[list[int]]) -> onnx.ModelProto:
    # pads [0, 0, −5, 0, 0, 0, −5, 0]: the 4 rows of x lose 10
    values = numpy_helper.from_array(np.array([-5, -5], np.int64), "pads")
    sparse = helper.make_sparse_tensor(values, _int64("pads_at", indices), [8])
    return _sliced(helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"), sparse, [1, 3, 4, 4])


ABORTING = {
    "conv-weight": (_conv([1, 3, 1, 1]), "[1, 2, -1, -1]", "Conv 'conv'"),
    "pads-flat-indices": (_pad([2, 6]), "[1, 3, -6, 4]", "Pad 'pad'"),
    "pads-coordinates": (_pad([[2], [6]]), "[1, 3, -6, 4]", "Pad 'pad'"),
}


@pytest.mark.parametrize("case", sorted(ABORTING))
def test_a_negative_dim_from_a_sparse_initializer_is_foreseen(case: str) -> None:
    model, shape, maker = ABORTING[case]
    reason = inference_abort(model)
    assert reason.startswith(f"Slice 'cut' reads 'p' of shape {shape}, a negative dimension"), (
        reason
    )
    assert f"({maker} makes it)" in reason


@pytest.mark.parametrize("case", sorted(ABORTING))
def test_bench_of_such_a_model_is_refused_not_an_abort(tmp_path, case: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(ABORTING[case][0], path)
    line = one_line_refusal(bench_once(path))
    assert "Slice 'cut' reads 'p'" in line, line


def test_a_sparse_weight_whose_window_fits_is_not_refused(tmp_path) -> None:
    model = _conv([1, 3, 4, 4])  # [1, 2, 2, 2]
    assert inference_abort(model) == ""
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    done = bench_once(path)
    assert done.returncode == 0, done.stderr[-300:]
