"""constant-folding leaves a Shape with `start`/`end` alone below opset 15, where Shape has no
such attributes (H208 found it: onnxruntime refuses the original, and the fold made a model
that runs, from a node the fold read as Shape-15's)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.backends.onnxruntime import probe_failure

FEEDS = {
    "x": np.zeros((2, 3, 4), np.float32),
    "z": np.arange(12, dtype=np.float32),
}


def _model(opset: int) -> onnx.ModelProto:
    return onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : {opset}]>
        g (float[2,3,4] x, float[12] z) => (float[3,4] y) {{
          s = Shape<start = 1>(x)
          y = Reshape(z, s)
        }}"""
    )


def test_shape_with_start_at_opset_13_is_not_folded() -> None:
    model = _model(13)
    assert probe_failure(model, FEEDS) is not None  # onnxruntime refuses the original
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Shape", "Reshape"]


@pytest.mark.parametrize("opset", [15, 21])
def test_shape_with_start_from_opset_15_folds(opset: int) -> None:
    model = _model(opset)
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Reshape"]
    assert probe_failure(out, FEEDS) is None
