"""Every opset conversion asks `graphopt.ir.opset_conversion.misconverted` first: merge refuses
and the TensorRT float16 path keeps the opset where onnx.version_converter is known to change
what a model computes (linear Upsample / Resize-10, Hardmax across opset 13)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.errors import GraphoptError
from graphopt.ir.opset_conversion import misconverted
from graphopt.multitask import merge


def _model(nodes, inits, opset, x_dims, y_dims=None, ir=7):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    return model


def upsample9() -> onnx.ModelProto:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    node = helper.make_node("Upsample", ["x", "s"], ["y"], mode="linear")
    return _model([node], [scales], 9, [1, 1, 3, 3], [1, 1, 6, 6])


def relu13() -> onnx.ModelProto:
    return _model([helper.make_node("Relu", ["x"], ["y"])], [], 13, [1, 1, 3, 3], [1, 1, 3, 3])


def test_the_known_cases():
    assert "Upsample in linear mode" in misconverted(upsample9().graph, 9, 13)
    assert misconverted(relu13().graph, 13, 19) == ""


def test_merge_refuses_a_conversion_that_would_change_the_model():
    """Merging an opset-9 model with a linear Upsample and an opset-13 model converted the
    first one to a half_pixel Resize: its task's outputs moved by up to 0.75, silently."""
    with pytest.raises(GraphoptError, match="would change what it computes"):
        merge([upsample9(), relu13()])


def test_tensorrt_fp16_converts_hardmax_exactly():
    """The float16 path moves a Q/DQ model to opset 19 for float16 scales; an opset-12 model
    with a Hardmax(axis=1) came back computing Hardmax over one axis instead of over the
    flattened [1, C·H·W] (a different one-hot); it then stayed at 12 with Q/DQ in float32.
    Since ecb0339 the conversion flattens around the axis (Flatten, Hardmax, Reshape): the
    model goes to 19 and computes the same one-hot."""
    from graphopt.backends.tensorrt import fp16_model

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(0, np.int8), "xz"),
        numpy_helper.from_array(w, "w"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("Conv", ["xd", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Hardmax", ["c"], ["y"], axis=1),
    ]
    model = _model(nodes, inits, 12, [1, 3, 8, 8])
    half = fp16_model(model)
    assert half.opset_import[0].version == 19
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(ort_run(half, {"x": x})["y"], ort_run(model, {"x": x})["y"])
