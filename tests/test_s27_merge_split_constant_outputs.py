"""split --task gives back a task output that is a constant of its model as that constant: the
output came back as an Identity of a tensor of another name. A model whose output is a
Constant node, merged with itself, came back as `m0_y = Constant(); y = Identity(m0_y)` (the
twin's name); one whose output is an initializer as `y = Identity(c_1)` with its initializer
renamed c_1 (the output took the name c)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import parser

import graphopt

CONSTANT_OUTPUT = parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 17]>
    a (float[N, 4] x) => (float[N, 4] y, float[2] k) {
      y = Relu(x)
      k = Constant<value = float[2] {1.0, 2.0}>()
    }"""
)
INITIALIZER_OUTPUT = parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 17]>
    b (float[N, 4] x) => (float[N, 4] y, float[2] c) <float[2] c = {1.0, 2.0}> {
      y = Sigmoid(x)
    }"""
)


def _shape(model: onnx.ModelProto) -> tuple[list[tuple[str, list[str], list[str]]], list[str]]:
    nodes = [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node]
    return nodes, [t.name for t in model.graph.initializer]


def _outputs(model: onnx.ModelProto) -> list[np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})


def test_a_constant_node_output_of_a_model_merged_with_itself():
    merged = graphopt.merge([CONSTANT_OUTPUT, CONSTANT_OUTPUT])
    for task in ("m0_", "m1_"):
        back = graphopt.split(merged, task=task)
        assert _shape(back) == _shape(CONSTANT_OUTPUT), task
        for got, want in zip(_outputs(back), _outputs(CONSTANT_OUTPUT), strict=True):
            np.testing.assert_array_equal(got, want)


def test_an_initializer_output_comes_back_as_the_initializer():
    for models in ([INITIALIZER_OUTPUT, INITIALIZER_OUTPUT], [CONSTANT_OUTPUT, INITIALIZER_OUTPUT]):
        merged = graphopt.merge(models)
        back = graphopt.split(merged, task="m1_")
        onnx.checker.check_model(back, full_check=True)
        assert [o.name for o in back.graph.output] == ["y", "c"]
        assert not [n for n in back.graph.node if n.op_type == "Identity"]
        assert {t.name for t in back.graph.initializer} <= {"c"}
        for got, want in zip(_outputs(back), _outputs(INITIALIZER_OUTPUT), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    back = graphopt.split(graphopt.merge([INITIALIZER_OUTPUT] * 2), task="m1_")
    assert _shape(back) == _shape(INITIALIZER_OUTPUT)
