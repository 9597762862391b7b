"""Adversarial review of materialize-fusion-groups: models whose functions must still run."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from graphopt.ir import Graph, load_model
from graphopt.passes.base import PassContext
from graphopt.passes.fusion_functions import MaterializeFusionGroups

from .conftest import assert_same_outputs

SHAPE = [2, 3]


def _chain_model(imports: list[tuple[str, int]], node_domain: str = "") -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu", domain=node_domain),
        helper.make_node("Sigmoid", ["a"], ["y"], name="sigmoid", domain=node_domain),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in imports], ir_version=10
    )


def _materialize(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = Graph(load_model(model))
    assert MaterializeFusionGroups().run(graph, PassContext()).changed
    return graph.commit()


def _feeds() -> dict[str, np.ndarray]:
    return {"x": np.linspace(-2, 2, 6, dtype=np.float32).reshape(SHAPE)}


def test_default_domain_imported_as_ai_onnx():
    # A model may import the default opset under its long name; onnx.checker and onnxruntime
    # accept it in the graph, but a function body resolves its nodes' domain "" only.
    model = _chain_model([("ai.onnx", 18)])
    onnx.checker.check_model(model, full_check=True)
    out = _materialize(model)
    assert len(out.functions) == 1
    onnx.checker.check_model(out, full_check=True)
    assert_same_outputs(model, out, _feeds())


def test_nodes_of_domain_ai_onnx_run_inside_the_function():
    # onnxruntime runs graph nodes whose domain is spelled "ai.onnx"; in a function it finds
    # no opset for that domain unless the body uses "".
    model = _chain_model([("", 18)], node_domain="ai.onnx")
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = _materialize(model)
    assert [n.domain for n in out.functions[0].node] == ["", ""]
    assert_same_outputs(model, out, _feeds())
