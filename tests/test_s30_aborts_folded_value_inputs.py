"""inference_aborts and other values inference reads than sizes: a Reshape whose target comes
through Identity of a constant has dims onnx's inference does not know, but onnxruntime's
constant folding makes the target an initializer, so its inference knows them, and a 3×3
MaxPool of the [1, 48, 1, 1] it makes gives [1, 48, −1, −1]: its loader aborted (SIGABRT,
`graphopt bench`) on the Slice of it, while the stem inferred without the target and said
nothing. The judged copy now folds such values (a Reshape's target, Expand's shape, Slice's
bounds, ...) too. Every load runs in a child process.
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


def _reshaped(target: list[int]) -> onnx.ModelProto:
    """q = Reshape(x [1, 3, 4, 4], Identity(`target`)); an unpadded 3×3 MaxPool 'pool' of q, then
    a Slice 'cut' of it on axis 2."""
    nodes = [
        helper.make_node("Identity", ["target0"], ["target"]),
        helper.make_node("Reshape", ["x", "target"], ["q"]),
        helper.make_node("MaxPool", ["q"], ["p"], kernel_shape=[3, 3], name="pool"),
        helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
    ]
    inits = [_int64("target0", target), _int64("st", [0]), _int64("en", [1]), _int64("ax", [2])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_a_reshape_target_through_identity_is_folded() -> None:
    reason = inference_abort(_reshaped([1, 48, 1, 1]))
    assert reason.startswith(
        "Slice 'cut' reads 'p' of shape [1, 48, -1, -1], a negative dimension "
        "(MaxPool 'pool' makes it)"
    ), reason


@pytest.mark.parametrize("target, refused", [([1, 48, 1, 1], True), ([1, 3, 4, 4], False)])
def test_bench_refuses_it_in_one_line_not_an_abort(
    tmp_path, target: list[int], refused: bool
) -> None:
    model = _reshaped(target)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    done = bench_once(path)
    if not refused:  # [1, 3, 2, 2]
        assert inference_abort(model) == ""
        assert done.returncode == 0, done.stderr[-300:]
        return
    line = one_line_refusal(done)
    assert "Slice 'cut' reads 'p' of shape [1, 48, -1, -1]" in line, line
