"""Adversarial review of the FuseOps partition (op kinds, post-dominator tree, three phases)
and of materialize-fusion-groups: what it found, as regression tests."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import fuse_ops
from graphopt.backends.onnxruntime import run as ort_run


def _value(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# ---------------------------------------------------------------------------- op kinds

MEAN = np.array([3.0, -2.0], np.float32)
VAR = np.array([4.0, 9.0], np.float32)
SCALE = np.array([1.5, 0.5], np.float32)
BIAS = np.array([0.1, 0.2], np.float32)


def _conv_bn_relu(opset: int, bn_outputs: list[str]) -> onnx.ModelProto:
    inits = {
        "w": np.array([[1.0, 0.5], [-0.5, 1.0]], np.float32).reshape(2, 2, 1, 1),
        "s": SCALE,
        "b": BIAS,
        "mu": MEAN,
        "var": VAR,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "s", "b", "mu", "var"], bn_outputs, name="bn"),
        helper.make_node("Relu", [bn_outputs[0]], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [_value("x", [2, 2, 4, 4])],
        [_value("y", [2, 2, 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("opset", [9, 12])
def test_batchnorm_with_training_outputs_before_opset_14_is_opaque(opset):
    # Opsets 7-13 have no training_mode attribute: a BatchNormalization that lists its running
    # and saved mean/variance outputs is in training mode, and onnxruntime normalizes it by the
    # batch's own statistics (a reduction over its input). node_kind read only training_mode,
    # so FuseOps grouped Conv -> BN(training) -> Relu as the Conv's elementwise epilogue.
    model = _conv_bn_relu(opset, ["n", "rm", "rv", "sm", "sv"])
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32) * 3 + 1
    w = np.array([[1.0, 0.5], [-0.5, 1.0]], np.float32)
    c = np.einsum("oi,nihw->nohw", w, x)
    per_channel = [v.reshape(1, 2, 1, 1) for v in (SCALE, BIAS)]
    batch = (c - c.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        c.var(axis=(0, 2, 3), keepdims=True) + 1e-5
    )
    y = ort_run(model, {"x": x})["y"]
    np.testing.assert_allclose(y, np.maximum(batch * per_channel[0] + per_channel[1], 0), atol=1e-5)
    assert fuse_ops(model) == [["conv"], ["bn"], ["relu"]]
    # the inference form (Y alone) keeps its kind: one group
    assert fuse_ops(_conv_bn_relu(opset, ["n"])) == [["conv", "bn", "relu"]]
