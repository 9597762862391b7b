"""split --task gives a task output that merge computed by a shared node, and that the task's
nodes read too, its own name on the tensor: b (r = Relu(x), s = Sigmoid(r); outputs r and s)
merged with a (t = Relu(x), y = Tanh(t)) came back as t = Relu(x), s = Sigmoid(t),
r = Identity(t): an extra node and a tensor named as a's (a hint feature a distillation model
outputs and its head reads is such a tensor)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import parser

import graphopt

A = parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 17]>
    a (float[N, 4] x) => (float[N, 4] y) { t = Relu(x) y = Tanh(t) }"""
)
B = parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 17]>
    b (float[N, 4] x) => (float[N, 4] r, float[N, 4] s) { r = Relu(x) s = Sigmoid(r) }"""
)


def _nodes(model: onnx.ModelProto) -> list[tuple[str, list[str], list[str]]]:
    return sorted((n.op_type, list(n.input), list(n.output)) for n in model.graph.node)


def test_the_shared_output_takes_its_own_name_back():
    merged = graphopt.merge([A, B], prefixes=["a_", "b_"])
    back = graphopt.split(merged, task="b_")
    assert _nodes(back) == _nodes(B)
    onnx.checker.check_model(back, full_check=True)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = ort.InferenceSession(back.SerializeToString()).run(None, {"x": x})
    want = ort.InferenceSession(B.SerializeToString()).run(None, {"x": x})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert _nodes(graphopt.split(merged, task="a_")) == _nodes(A)


def test_a_model_merged_with_itself_and_a_models_own_identity():
    """Controls: a model merged with itself comes back as it was; an Identity the model holds
    itself (no merged output's name) stays."""
    own = parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        c (float[N, 4] x) => (float[N, 4] r, float[N, 4] s) {
          t = Relu(x)
          r = Identity(t)
          s = Sigmoid(t)
        }"""
    )
    merged = graphopt.merge([B, B, own], prefixes=["b_", "c_", "d_"])
    for task in ("b_", "c_"):
        assert _nodes(graphopt.split(merged, task=task)) == _nodes(B)
    assert _nodes(graphopt.split(merged, task="d_")) == _nodes(own)
