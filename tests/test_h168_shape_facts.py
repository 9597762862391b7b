"""H168: shape facts that onnxruntime's run contradicts, and the passes that acted on them."""

from __future__ import annotations

import numpy as np
import onnx.parser
import pytest

import graphopt
from graphopt.analysis import shape_facts
from tests.conftest import assert_same_outputs

STFT = """<ir_version: 9, opset_import: ["" : 17]>
g (float[1,16,1] x) => (int64[1] bins) {
  step = Constant<value=int64 {4}>()
  window = Constant<value=float[WINDOW] {WEIGHTS}>()
  z = STFT(x, step, window)
  shape = Shape(z)
  axis = Constant<value=int64[1] {2}>()
  bins = Gather(shape, axis)
}"""


def _stft(window: int) -> onnx.ModelProto:
    text = STFT.replace("WINDOW", str(window)).replace("WEIGHTS", ", ".join(["1"] * window))
    return onnx.parser.parse_model(text)


@pytest.mark.parametrize("window", [5, 6])
def test_onesided_stft_without_frame_length_has_half_the_bins(window):
    # onnxruntime: ⌊window / 2⌋ + 1 bins; ONNX inference said `window`, and
    # simplify-shape-subgraphs folded Shape(z)[2] to that constant
    model = _stft(window)
    assert shape_facts(model).shape("z") in ((1, 3, window // 2 + 1, 2), (1, 3, None, 2))
    feeds = {"x": np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 16, 1)}
    for pipeline in ("default", "tensorrt"):
        out = graphopt.optimize(model, pipeline=pipeline)
        assert_same_outputs(model, out, feeds)
