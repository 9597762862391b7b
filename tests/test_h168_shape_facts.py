"""H168: shape facts that onnxruntime's run contradicts, and the passes that acted on them."""

from __future__ import annotations

import subprocess
import sys

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


SHAPE_SLICE = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3,4,5,6] x) => (int64[1] z) {
  shape = Shape(x)
  start = Constant<value=int64[1] {2}>()
  end = Constant<value=int64[1] {STEP}>()
  axis = Constant<value=int64[1] {0}>()
  step = Constant<value=int64[1] {STEP}>()
  picked = Slice(shape, start, end, axis, step)
  zero = Constant<value=int64[1] {0}>()
  z = Add(picked, zero)
}"""


@pytest.mark.parametrize("step", [2**31 - 1, 2**31 - 2])
def test_a_huge_step_slice_of_a_shape_does_not_crash_inference(tmp_path, step):
    # onnx 1.23's data propagation of Shape(x)[2::2^31 - 1] overflowed start + step and
    # segfaulted: `graphopt optimize` died with SIGSEGV (shapes clamped steps to 2^31 - 1)
    model = onnx.parser.parse_model(SHAPE_SLICE.replace("STEP", str(step)))
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, src)
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", str(src), "-o", str(dst)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    feeds = {"x": np.ones((2, 3, 4, 5, 6), np.float32)}
    assert_same_outputs(model, onnx.load(dst), feeds)
