"""An If body reading Shape of an outer Range whose length onnxruntime 1.23.2 and 1.32.0 count
differently (H150): the body was typed from the outer shape facts (ONNX inference counts as
1.23.2 does: [13]), so its Shape folded to [13] where onnxruntime 1.32 computes [12]."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from tests.conftest import assert_same_outputs

MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
g (int64[1] x, bool b) => (int64[?] y) {
  a = Constant <value = float {0.5}> ()
  l = Constant <value = float {-0.7}> ()
  d = Constant <value = float {-0.1}> ()
  r = Range (a, l, d)
  y = If (b) <
    then_branch = t () => (int64[?] yt) { s = Shape (r)  yt = Add (s, x) },
    else_branch = e () => (int64[?] ye) { ye = Identity (x) }
  >
}
"""


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt", "simplify"])
def test_a_body_reading_the_shape_of_a_disputed_range_keeps_it(pipeline):
    model = onnx.parser.parse_model(MODEL)
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model, pipeline)
    assert_same_outputs(model, out, {"x": np.zeros(1, np.int64), "b": np.array(True)})
    assert "Range" in [n.op_type for n in out.graph.node]
