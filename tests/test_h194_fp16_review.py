"""fp16_model (graphopt.backends.tensorrt), H194's review of the float16 conversion: ops whose
output type an `output_datatype` attribute sets (float32 by default), which onnxruntime's
converter leaves as it is while it declares the output float16.

Checked in onnxruntime against the float32 model (TensorRT is not needed)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model

WINDOWS = ("BlackmanWindow", "HannWindow", "HammingWindow")


def _window_model(op: str) -> onnx.ModelProto:
    """y = x * op(size): a float32 window (output_datatype's default) scaling an input."""
    size = helper.make_tensor("size", TensorProto.INT64, [], [8])
    nodes = [helper.make_node(op, ["size"], ["w"]), helper.make_node("Mul", ["x", "w"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])],
        [size],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _mel_model() -> onnx.ModelProto:
    """y = x @ MelWeightMatrix(...): 4 mel bins of a 9-bin spectrum (onnx's own test case's
    arguments, scaled down)."""
    consts = [
        helper.make_tensor("bins", TensorProto.INT64, [], [4]),
        helper.make_tensor("dft", TensorProto.INT64, [], [16]),
        helper.make_tensor("rate", TensorProto.INT64, [], [8192]),
        helper.make_tensor("low", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("high", TensorProto.FLOAT, [], [4096.0]),
    ]
    nodes = [
        helper.make_node("MelWeightMatrix", ["bins", "dft", "rate", "low", "high"], ["m"]),
        helper.make_node("MatMul", ["x", "m"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        consts,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _same_after_fp16(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)  # was: 'Inferred elem type ... (1) vs (10)'
    (expected,) = run(model, feeds).values()
    (got,) = run(half, feeds).values()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("op", WINDOWS)
def test_a_float32_window_makes_a_valid_float16_model(op: str) -> None:
    x = np.linspace(-3.0, 5.0, 8, dtype=np.float32)
    _same_after_fp16(_window_model(op), {"x": x})


def test_mel_weight_matrix_makes_a_valid_float16_model() -> None:
    x = np.abs(np.sin(np.arange(18, dtype=np.float32))).reshape(2, 9)
    _same_after_fp16(_mel_model(), {"x": x})


def test_a_window_in_an_if_body_makes_a_valid_float16_model() -> None:
    size = helper.make_tensor("size", TensorProto.INT64, [], [8])
    then = helper.make_graph(
        [
            helper.make_node("HannWindow", ["size"], ["w"]),
            helper.make_node("Mul", ["x", "w"], ["t"]),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [8])],
        [size],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [8])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        "g",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.linspace(-3.0, 5.0, 8, dtype=np.float32)
    for c in (True, False):
        _same_after_fp16(model, {"c": np.array(c), "x": x})
