"""merge says when an opset conversion is refused for a shape the model itself declares wrong.

ddddocr's common.onnx (opset 12) declares its output [1, seqlen] where its last Reshape makes
a rank-3 tensor (onnxruntime runs it, warning that the shape is not the declared one). Merged
with an opset 17 model it is converted to 17, where Reshape-14's inference counts the output's
rank from the shape's length (Reshape-5's left it open), and the checker refuses the declared
rank. onnx.version_converter and graphopt's conversion give the same model: the declaration is
at fault, not the conversion, and merge blamed "onnx.version_converter's model". The message
now names the op version, the node and the output whose declared shape inference refutes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import parser

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.multitask import MergeError, merge

OPSET_17 = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 17]>\ng (float[1,2] z) => (float[1,2] w) { w = Relu(z) }'
)


def stale_output_rank(node_name: str = "") -> onnx.ModelProto:
    """y = Reshape(x, [Shape(x)[0], -1]), of rank 2, declared float[6] (rank 1)."""
    model = parser.parse_model(
        '<ir_version: 7, opset_import: ["" : 12]>\n'
        "g (float[2,3] x) => (float[6] y) {"
        " s = Shape(x) i = Constant<value=int64{0}>() g = Gather<axis=0>(s, i)"
        " u = Unsqueeze<axes=[0]>(g) m = Constant<value=int64[1]{-1}>()"
        " t = Concat<axis=0>(u, m) y = Reshape(x, t) }"
    )
    model.graph.node[-1].name = node_name
    onnx.checker.check_model(model, full_check=True)  # the model itself passes
    return model


def test_the_model_runs_with_another_rank_than_it_declares() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert ort_run(stale_output_rank(), {"x": x})["y"].shape == (2, 3)


@pytest.mark.parametrize("node_name", ["", "Reshape_101"])
def test_merge_names_the_declared_shape_inference_refutes(node_name: str) -> None:
    with pytest.raises(MergeError) as caught:
        merge([stale_output_rank(node_name), OPSET_17])
    text = str(caught.value)
    which = f" (node {node_name!r})" if node_name else ""
    assert text.startswith(
        "model 0: needs default opset 17 to merge (it uses 12), and there the inference of "
        f"Reshape-14{which} contradicts "
    ), text
    assert "the shape the model declares for its output 'y', [6]" in text
    assert "differ in rank" in text and "version_converter" not in text
    assert "\n" not in text
