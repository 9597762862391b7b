"""`graphopt.optimize` on IR < 4 models, which list every weight as a graph input: the result is
at IR 4 with its weights as weights (onnxruntime refuses to feed them; TensorRT reads them as
weights), so the passes can fold them. Before, nothing with a weight folded (the onnx wheel's
light_inception_v1: 237 → 236 nodes; now 138, onnxsim 139)."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from tests.conftest import assert_same_outputs


def ir3_conv_bn() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "g": (rng.random(4) + 0.5).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "m": rng.standard_normal(4).astype(np.float32),
        "v": (rng.random(4) + 0.5).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["y"], name="relu"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    inputs += [
        helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape))
        for k, v in weights.items()
    ]
    graph = helper.make_graph(
        nodes,
        "ir3",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    onnx.checker.check_model(model, full_check=True)
    return model


def test_ir3_weights_become_weights_and_fold(caplog):
    model = ir3_conv_bn()
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
    assert out.ir_version >= 4 and [i.name for i in out.graph.input] == ["x"]
    assert [n.op_type for n in out.graph.node] == ["Conv", "Relu"]
    assert "its 5 weights (w, g, b, ...) are constants now, not inputs" in caplog.text
    assert model.ir_version == 3 and len(model.graph.input) == 6  # the caller's, untouched
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert_same_outputs(model, out, {"x": x})


@pytest.mark.parametrize("name", ["light_inception_v1", "light_squeezenet"])
def test_onnx_wheels_ir3_classifiers_are_optimized(name):
    """Real IR 3 exports (caffe2, in the onnx wheel's backend test data)."""
    import os

    path = os.path.join(
        os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"{name}.onnx"
    )
    if not os.path.exists(path):
        pytest.skip(f"this onnx wheel has no {name}.onnx")
    model = onnx.load(path)
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
    before = [n for n in model.graph.node if n.op_type != "Constant"]
    after = [n for n in out.graph.node if n.op_type != "Constant"]
    assert len(after) <= 0.7 * len(before), (len(before), len(after))  # 237 → 138, 105 → 65
    x = np.random.default_rng(2).random((1, 3, 224, 224)).astype(np.float32)
    assert_same_outputs(model, out, {out.graph.input[0].name: x})
