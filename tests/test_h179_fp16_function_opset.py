"""`fp16_model` on a model whose local function imports another opset than the model's, as
onnx.checker accepts where the body's ops are defined alike at both (torch's dynamo exports
made such functions). onnx's inliner leaves such a function unless asked to convert its
version; 60850e2's inlining then refused the model ('onnx does not inline its local
function(s) local.F'), where the parent had converted one whose body holds no float
constant. Now the function is inlined converted to the model's opset and the body converted
like the main graph. Checked with onnx.checker (full) and run in onnxruntime against the
float32 original."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import TensorProto

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.tensorrt import fp16_model

X = np.array([[0.1, -1.0, 2.0, 3.3], [-0.45, 0.7, 1.25, -2.6]], np.float32)

NEG = "\n  u = Neg (r)"
MUL = """
  two = Constant <value = float[4] {2.0, 0.5, -1.5, 3.0}> ()
  u = Mul (r, two)"""


def model(opset: int, body_opset: int, body: str) -> onnx.ModelProto:
    text = f"""<ir_version: 8, opset_import: ["" : {opset}, "local" : 1]>
g (float[2, 4] x) => (float[2, 4] y) {{
  a = Relu (x)
  y = local.F (a)
}}
<domain: "local", opset_import: ["" : {body_opset}]>
F (t) => (u) {{
  r = Sigmoid (t){body}
}}
"""
    m = onnx.parser.parse_model(text)
    onnx.checker.check_model(m, full_check=True)  # a valid model
    return m


@pytest.mark.parametrize(
    ("opset", "body_opset", "body"),
    [(17, 16, NEG), (17, 16, MUL), (17, 18, MUL), (15, 14, MUL)],
)
def test_a_function_at_another_compatible_opset_converts(opset, body_opset, body):
    original = model(opset, body_opset, body)
    half = fp16_model(original)
    onnx.checker.check_model(half, full_check=True)
    assert not half.functions
    assert any(t.data_type == TensorProto.FLOAT16 for n in half.graph.node for t in _tensors(n))
    want = ort_run(original, {"x": X}, level="disable")["y"]
    got = ort_run(half, {"x": X}, level="disable")["y"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-2)


def _tensors(node: onnx.NodeProto) -> list[onnx.TensorProto]:
    """The tensor-valued attributes of `node` and the element types of its Cast targets, as
    tensors (a float16 Constant, or a Cast to float16, shows the body was converted)."""
    found = [a.t for a in node.attribute if a.type == onnx.AttributeProto.TENSOR]
    for a in node.attribute:
        if node.op_type == "Cast" and a.name == "to":
            t = onnx.TensorProto()
            t.data_type = a.i
            found.append(t)
    return found
