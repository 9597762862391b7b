"""Review 11 of multi-task merge/split and distillation targets: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.multitask import merge

F = TensorProto.FLOAT


def vi(name: str, dims: list, elem: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, dims)


def model(
    nodes: list,
    inputs: list,
    outputs: list,
    initializers: list | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers or [])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def test_an_output_that_is_its_input_merges_beside_an_input_of_that_name_kept_apart():
    """Model 1 reads x [1,4] (model 0's x is [1,3]: kept apart as m1_x) and returns x itself
    as an output, merged as m1_x too: merge refused with 'output name m1_x collides with an
    input'. The renamed input now takes a name no output has."""
    a = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 3])], [vi("y", [1, 3])])
    b = model(
        [helper.make_node("Relu", ["x"], ["z"])],
        [vi("x", [1, 4])],
        [vi("x", [1, 4]), vi("z", [1, 4])],
    )
    merged = merge([a, b])
    renamed = [i.name for i in merged.graph.input if i.name != "x"]
    assert len(renamed) == 1 and renamed[0] != "m1_x"
    x0 = np.array([[-1.0, 2.0, -3.0]], np.float32)
    x1 = np.array([[4.0, -5.0, 6.0, -7.0]], np.float32)
    got = ort_run(merged, {"x": x0, renamed[0]: x1})
    np.testing.assert_array_equal(got["m0_y"], np.maximum(x0, 0))
    np.testing.assert_array_equal(got["m1_x"], x1)
    np.testing.assert_array_equal(got["m1_z"], np.maximum(x1, 0))
