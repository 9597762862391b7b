"""name-unknown-dims (in the tensorrt pipeline): each graph input dim paddle2onnx named '?'
gets a name of its own. TensorRT's parser names a network input's dims by their dim_param and
its builder requires dims named alike to be equal: PP-OCRv3's detector x [?, 3, ?, ?] built
for square inputs only ('Condition '==' violated: 480 != 640'), and `graphopt check` says so
for a profile of 1x3x480x640."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import parse_shapes
from graphopt.backends.trt_check import check_tensorrt
from graphopt.realmodels import fetch_model


def _dims(vi: onnx.ValueInfoProto) -> list[object]:
    return [
        d.dim_param if d.HasField("dim_param") else d.dim_value
        for d in vi.type.tensor_type.shape.dim
    ]


def _paddle_like() -> onnx.ModelProto:
    """x [?, 3, ?, ?] and s [?, 2] (batch alike), a dim param 'x_2' already taken by the
    output, and a dim 'batch' the inputs share on purpose."""
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["y"]),
            helper.make_node("Relu", ["s"], ["t"]),
            helper.make_node("Neg", ["b"], ["c"]),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["?", 3, "?", "?"]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["?", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 4]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["?", 2, "x_2", "?"]),
            helper.make_tensor_value_info("t", TensorProto.FLOAT, ["?", 2]),
            helper.make_tensor_value_info("c", TensorProto.FLOAT, ["batch", 4]),
        ],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_question_mark_input_dims_get_names_of_their_own() -> None:
    model = _paddle_like()
    out = graphopt.optimize(model, "tensorrt")
    inputs = {vi.name: _dims(vi) for vi in out.graph.input}
    assert inputs == {
        "x": ["x_0", 3, "x_2_1", "x_3"],  # x_2 is the output's: made unique
        "s": ["s_0", 2],
        "b": ["batch", 4],  # a name the exporter gave: kept
    }
    assert _dims(out.graph.output[0]) == ["?", 2, "x_2", "?"]  # outputs are not renamed
    assert _dims(model.graph.input[0]) == ["?", 3, "?", "?"]  # not mutated
    onnx.checker.check_model(out, full_check=True)
    feeds = {
        "x": np.ones((1, 3, 4, 6), np.float32),
        "s": np.ones((1, 2), np.float32),
        "b": np.ones((1, 4), np.float32),
    }
    for name, value in run(model, feeds).items():
        np.testing.assert_array_equal(run(out, feeds)[name], value)


def test_default_leaves_the_names_and_check_says_how_to_build_non_square() -> None:
    model = _paddle_like()
    assert _dims(graphopt.optimize(model).graph.input[0]) == ["?", 3, "?", "?"]
    shapes = parse_shapes("x:1x3x480x640 s:1x2 b:1x4")
    (finding,) = [f for f in check_tensorrt(model, "10.15", shapes=shapes) if f.severity == "error"]
    assert "inputs share dimension '?'" in str(finding)
    assert "the tensorrt pipeline's name-unknown-dims gives them" in str(finding)
    renamed = graphopt.optimize(model, "tensorrt")
    assert not [f for f in check_tensorrt(renamed, "10.15", shapes=shapes) if f.severity == "error"]


@pytest.mark.realmodel
def test_ppocrv3_det_builds_non_square_after_the_tensorrt_pipeline() -> None:
    model = onnx.load(str(fetch_model("ppocrv3_det")))
    shapes = parse_shapes("x:1x3x480x640")
    assert [f for f in check_tensorrt(model, "10.15", shapes=shapes) if f.severity == "error"]
    out = graphopt.optimize(model, "tensorrt")
    assert _dims(out.graph.input[0])[1:] == [3, "x_2", "x_3"]
    assert not [f for f in check_tensorrt(out, "10.15", shapes=shapes) if f.severity == "error"]
