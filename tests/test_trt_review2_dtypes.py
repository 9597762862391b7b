"""graphopt.backends.trt_check, second review: element types TensorRT has no type for."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt, errors


@pytest.mark.parametrize(
    "dtype",
    [
        TensorProto.FLOAT8E5M2,
        TensorProto.FLOAT8E4M3FNUZ,
        TensorProto.FLOAT8E5M2FNUZ,
        TensorProto.INT2,
        TensorProto.UINT2,
        TensorProto.FLOAT6E2M3,
    ],
)
def test_element_types_without_a_tensorrt_type_are_errors(dtype):
    """docs/operators.md, TensorRT 10.15 matrix (onnx/onnx-tensorrt): "TensorRT supports the
    following ONNX data types: DOUBLE, FLOAT32, FLOAT16, BFLOAT16, FP8, FP4, INT32, INT64, INT8,
    INT4, UINT8, and BOOL"; TensorRT's FP8 is E4M3 only (NVIDIA/TensorRT
    include/NvInferRuntimeBase.h DataType, release/10.16 and release/11.1: no E5M2, FNUZ, 2-bit
    or 6-bit type)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name="id")],
        "g",
        [helper.make_tensor_value_info("x", dtype, [4])],
        [helper.make_tensor_value_info("y", dtype, [4])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
    for version in (10, 11):
        found = [f for f in errors(check_tensorrt(m, version)) if f.rule == "dtype"]
        assert len(found) == 3, version  # input x, output y, and Identity's output y
        assert all("no type for" in f.message for f in found)
