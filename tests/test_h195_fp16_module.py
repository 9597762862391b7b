"""graphopt.backends.fp16 (H195): the float16 conversion as its own module, re-exported by the
TensorRT backend, and the one helper that makes its fresh names."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.backends import fp16, tensorrt
from graphopt.backends.fp16 import _first_free, _names_in_use


def test_the_tensorrt_backend_re_exports_the_float16_names() -> None:
    for name in (
        "fp16_model",
        "fp16_error",
        "FP16_TOLERANCE",
        "FP16_MAX",
        "FP16_LEAST",
        "FLOAT32_ONLY_OPS",
    ):
        assert getattr(tensorrt, name) is getattr(fp16, name), name


def test_first_free_takes_the_lowest_free_suffix_and_reserves_it() -> None:
    taken = {"w_0", "w_1", "w_3", "x"}
    assert _first_free("w", taken) == "w_2"
    assert "w_2" in taken
    assert _first_free("w", taken) == "w_4"  # w_2 is taken now, and w_3 was
    assert _first_free("x", taken) == "x_0"  # "x" itself is no `{base}_{k}`
    assert taken == {"w_0", "w_1", "w_2", "w_3", "w_4", "x", "x_0"}


def test_names_in_use_are_every_graphs_node_tensor_and_io_names_not_value_info() -> None:
    body = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["inner"], name="neg")],
        "then",
        [],
        [helper.make_tensor_value_info("inner", TensorProto.FLOAT, [1])],
    )
    main = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], name="if", then_branch=body, else_branch=body)],
        "main",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [onnx.numpy_helper.from_array(np.float32([1.0]), "x")],
        value_info=[helper.make_tensor_value_info("only_info", TensorProto.FLOAT, [1])],
    )
    assert _names_in_use([main, body]) == {"if", "c", "y", "x", "neg", "inner"}
    assert _names_in_use([main]) == {"if", "c", "y", "x"}
