"""graphopt.backends.trt_check, second review against TensorRT's own sources: each test is one
rule where the check disagreed with what TensorRT's ONNX parser (onnx/onnx-tensorrt) or its
layers (NVIDIA/TensorRT include/NvInfer.h) do, cited in the test's docstring."""

from __future__ import annotations

import numpy as np
from onnx import helper

from graphopt.backends.trt_check import check_tensorrt, errors
from tests.trt_models import const, messages, model, vi

# -- outputs the importer does not produce ---------------------------------------------------


def test_maxpool_with_a_named_but_unused_indices_output_is_refused():
    """onnx-tensorrt ModelImporter.cpp (10.x): a node's non-empty outputs must number what the
    importer returns ("Node has more output tensors than TRT expected"); MaxPool's importer
    returns Y only (operators.md 10.15: "Indices output tensor unsupported"), used or not."""
    m = model(
        [helper.make_node("MaxPool", ["x"], ["y", "unused"], kernel_shape=[2, 2], name="mp")],
        [vi("x", [1, 3, 8, 8])],
        [vi("y", None)],
    )
    found = errors(check_tensorrt(m, 10))
    assert [(f.rule, f.node) for f in found] == [("unsupported-attribute", "mp")]
    assert "Indices" in found[0].message
    empty = model(
        [helper.make_node("MaxPool", ["x"], ["y", ""], kernel_shape=[2, 2], name="mp")],
        [vi("x", [1, 3, 8, 8])],
        [vi("y", None)],
    )
    assert messages(check_tensorrt(empty, 10)) == []


def test_layernorm_with_named_but_unused_mean_output_is_refused():
    """operators.md 10.15, LayerNormalization: "Only the first output `Y` is supported"; with
    ModelImporter.cpp's output count check a named Mean or InvStdDev fails the parse."""
    inits = [const("g", np.ones(8, np.float32)), const("b", np.zeros(8, np.float32))]
    node = helper.make_node("LayerNormalization", ["x", "g", "b"], ["y", "mean"], name="ln")
    m = model([node], [vi("x", [1, 4, 8])], [vi("y", None)], inits)
    found = errors(check_tensorrt(m, 10))
    assert [(f.rule, f.node) for f in found] == [("unsupported-attribute", "ln")]
