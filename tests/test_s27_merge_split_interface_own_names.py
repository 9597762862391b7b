"""split --task keeps the task's own output names where the merged model names a tensor it did
not keep alike: b's Sigmoid u was shared with a's t (merged name t, b's own u: the task table
records {t: u}), b's own output is also called t, and split gave b's output back as u (found
by a random merge/split round trip)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import parser

import graphopt

A = parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 17]>
    a (float[N, 4] x) => (float[N, 4] y) { t = Sigmoid(x) y = Abs(t) }"""
)
B = parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 17]>
    b (float[N, 4] x) => (float[N, 4] t, float[N, 4] v) {
      u = Sigmoid(x)
      t = Relu(x)
      v = Neg(x)
    }"""
)


def test_an_output_named_like_a_shared_tensor_it_did_not_keep():
    merged = graphopt.merge([A, B], prefixes=["a_", "b_"])
    back = graphopt.split(merged, task="b_")
    assert [o.name for o in back.graph.output] == ["t", "v"]
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = ort.InferenceSession(back.SerializeToString()).run(None, {"x": x})
    np.testing.assert_array_equal(got[0], np.maximum(x, 0))


def test_a_kept_tensor_of_that_name_still_gets_its_own_name():
    """Control: where the shared tensor is kept (b reads u), it is moved out of the output's
    way and named u again."""
    b = parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        b (float[N, 4] x) => (float[N, 4] t) { u = Sigmoid(x) t = Relu(u) }"""
    )
    back = graphopt.split(graphopt.merge([A, b], prefixes=["a_", "b_"]), task="b_")
    assert [(n.op_type, list(n.input), list(n.output)) for n in back.graph.node] == [
        ("Sigmoid", ["x"], ["u"]),
        ("Relu", ["u"], ["t"]),
    ]
