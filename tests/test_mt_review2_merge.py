"""Review of merge's interface reconciliation (second adversarial review of graphopt.multitask)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.multitask import merge_with_report, split

X = np.array([1.5, -2.0, 3.0], np.float32)


def unary(op: str, domain: str = "") -> onnx.ModelProto:
    then = helper.make_graph(
        [helper.make_node(op, ["x"], ["t"])],  # onnxruntime reads "ai.onnx" in no body
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])],
    )
    graph = helper.make_graph(
        [
            helper.make_node(op, ["x"], ["h"], domain=domain),
            helper.make_node("ReduceMax", ["h"], ["c"], keepdims=0, domain=domain),
            helper.make_node("Cast", ["c"], ["b"], to=TensorProto.BOOL, domain=domain),
            helper.make_node("If", ["b"], ["y"], then_branch=then, else_branch=then, domain=domain),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, 17)])
    m.ir_version = 8
    return m


def test_a_model_that_spells_the_default_domain_ai_onnx_merges():
    """A model importing (and naming on its nodes) the default domain as "ai.onnx" is valid and
    runs, but the merged model imports it as "" and kept the nodes' spelling: 'the merged model
    fails onnx.checker: No opset import for domain ai.onnx'."""
    spelled = unary("Relu", "ai.onnx")
    np.testing.assert_array_equal(ort_run(spelled, {"x": X})["y"], np.maximum(X, 0))
    merged, report = merge_with_report([unary("Relu"), spelled])
    assert report.shared_nodes == 3  # Relu, ReduceMax, Cast: the If is never shared
    got = ort_run(merged, {"x": X})
    np.testing.assert_array_equal(got["m1_y"], np.maximum(X, 0))
    np.testing.assert_array_equal(ort_run(split(merged, task="m1"), {"x": X})["y"], got["m1_y"])
