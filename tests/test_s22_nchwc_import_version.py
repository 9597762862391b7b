"""ort-nchwc-layout on a model that imports com.microsoft.nchwc at a version other than 1 (it
loads while nothing uses the domain): the pass wrote its ops under that import, and onnxruntime
refused the result ("com.microsoft.nchwc:ReorderInput(-1) is not a registered function/op"; H217
found it). The pass now leaves such a model alone and says why; at version 1 it still rewrites."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN
from tests.test_pass_ort_nchwc import needs_nchwc

X = np.linspace(-2.0, 2.0, 32 * 8 * 8, dtype=np.float32).reshape(1, 32, 8, 8)


def _conv_model(nchwc_version: int) -> onnx.ModelProto:
    weight = np.linspace(-0.5, 0.5, 32 * 32 * 3 * 3, dtype=np.float32).reshape(32, 32, 3, 3)
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], "relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 32, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 32, 8, 8])],
        [numpy_helper.from_array(weight, "W")],
    )
    imports = [helper.make_opsetid("", 13), helper.make_opsetid(NCHWC_DOMAIN, nchwc_version)]
    return helper.make_model(graph, opset_imports=imports, ir_version=8)


def _domains(model: onnx.ModelProto) -> set[str]:
    return {n.domain for n in model.graph.node}


@needs_nchwc
def test_version_0_import_is_left_alone_and_the_result_runs() -> None:
    model = _conv_model(0)
    out = graphopt.optimize(model, "ort-cpu-native")
    assert NCHWC_DOMAIN not in _domains(out)
    expected = session(model, level="disable").run(None, {"x": X})[0]
    got = session(out, level="disable").run(None, {"x": X})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@needs_nchwc
def test_version_1_import_is_still_rewritten() -> None:
    out = graphopt.optimize(_conv_model(1), "ort-cpu-native")
    assert NCHWC_DOMAIN in _domains(out)
