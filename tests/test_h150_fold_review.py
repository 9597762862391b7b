"""Adversarial review of constant folding and shape-subgraph simplification (H150).

Each model here was optimized into one whose outputs differ from the original's in
onnxruntime (or that evaluated a blow-up before refusing it); every built-in pipeline is
checked against the original.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from tests.conftest import assert_same_outputs

PIPELINES = ("default", "ort-cpu", "ort-cpu-native", "tensorrt", "simplify")

# Range(0.5, -0.7, -0.1) of float32 has 12 elements in onnxruntime 1.32 (and onnx's
# reference), 13 in 1.23.2; ONNX shape inference counts as 1.23.2 does, so Shape(r) folded to
# [13] where onnxruntime 1.32 computes [12] (the Range itself is left to the runtime).
DISPUTED_RANGE = {
    "shape": "s = Shape (r)",
    "size-of-derived": "e = Add (r, r)\n  n = Size (e)\n  s = Unsqueeze (n, zero)",
    "gather-of-shape": "h = Shape (r)\n  g = Gather (h, zero)",
    "slice-of-shape": "h = Shape (r)\n  s = Slice (h, zero, one)",
}


def _disputed_range_model(reads: str, limit: float = -0.7) -> onnx.ModelProto:
    out = "g" if "g = Gather" in reads else "s"
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (int64[1] x) => (int64[?] y) {{
          a = Constant <value = float {{0.5}}> ()
          b = Constant <value = float {{{limit}}}> ()
          d = Constant <value = float {{-0.1}}> ()
          zero = Constant <value = int64[1] {{0}}> ()
          one = Constant <value = int64[1] {{1}}> ()
          r = Range (a, b, d)
          {reads}
          y = Add ({out}, x)
        }}
        """
    )
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("reads", sorted(DISPUTED_RANGE))
def test_shape_of_a_range_onnxruntime_versions_count_differently_is_not_folded(pipeline, reads):
    model = _disputed_range_model(DISPUTED_RANGE[reads])
    out = graphopt.optimize(model, pipeline)
    x = np.zeros(1, np.int64)
    assert_same_outputs(model, out, {"x": x})
    kinds = [n.op_type for n in out.graph.node]
    assert "Range" in kinds  # left to the runtime, and so is what reads its length
    assert "Shape" in kinds or "Size" in kinds


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_shape_of_a_range_both_versions_count_alike_still_folds(pipeline):
    # Range(0.5, -0.5, -0.1): 10 elements in onnxruntime 1.23.2, 1.32.0 and inference
    model = _disputed_range_model(DISPUTED_RANGE["shape"], limit=-0.5)
    out = graphopt.optimize(model, pipeline)
    assert_same_outputs(model, out, {"x": np.zeros(1, np.int64)})
    assert "Shape" not in [n.op_type for n in out.graph.node]
