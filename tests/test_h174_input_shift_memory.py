"""fold-input-add-into-conv sums Σ W·c per output channel a block of channels at a time
(`compute._channel_sums`): the same float64 products and per-row sums as one float64 copy of
the whole weight, without that copy (PP-OCRv4 det's 384×384 1×1 Convs: 1.2 MB each)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from graphopt.patterns import compute
from graphopt.patterns.compute import _channel_sums
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, explained, feeds, ops, run_passes

ADD = "fold-input-add-into-conv"


def _whole(w: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """What fold_input_shift computed before: one float64 product array, summed per row."""
    return np.multiply(w, factor, dtype=np.float64).reshape(w.shape[0], -1).sum(axis=1)


@pytest.mark.parametrize(
    "shape",
    [
        (384, 384, 1, 1),  # several blocks
        (360, 384, 1, 1),  # a last block shorter than the others
        (8, 1024, 3, 3),  # rows longer than numpy's 8192-element buffer
        (5, 40000, 1),  # a row longer than a block: one channel per block
        (1, 3, 7, 7),
        (48, 1, 3, 3),  # depthwise
        (7, 5),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_channel_sums_have_the_bits_of_the_whole_weight_sum(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    # magnitudes over many binades, so that a different order of the sums would show
    w = (rng.standard_normal(shape) * np.exp2(rng.integers(-12, 12, shape))).astype(dtype)
    scalar = np.float64(dtype(-0.3712))
    per_input = rng.standard_normal(shape[1]).astype(dtype).astype(np.float64)
    factor = per_input.reshape((1, shape[1]) + (1,) * (len(shape) - 2))
    factor = np.broadcast_to(factor, (shape[0], shape[1]) + (1,) * (len(shape) - 2))
    for f in (np.asarray(scalar), factor):
        got = _channel_sums(w, f)
        assert got.dtype == np.float64
        assert got.tobytes() == _whole(w, f).tobytes()


def _shifted_conv(c: np.ndarray, w: np.ndarray, bias: np.ndarray) -> object:
    n = w.shape[1]
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,{n},4,4] x) => (float[1,{w.shape[0]},4,4] z) {{
          s = Add(x, c)
          z = Conv<kernel_shape = [1, 1]>(s, W, B)
        }}""",
        {"c": c, "W": w, "B": bias},
    )


@pytest.mark.parametrize("per_channel", [False, True])
def test_the_fold_makes_no_float64_copy_of_a_large_weight(per_channel, monkeypatch):
    """x + c before a 384×384 1×1 Conv (PP-OCRv4 det's neck): the fold applies, the rewrite
    computes what the original does, and the computation allocates far less than the 1.2 MB
    a float64 copy of W took (numpy reports its buffers to tracemalloc)."""
    rng = np.random.default_rng(174)
    w = (rng.standard_normal((384, 384, 1, 1)) * 0.05).astype(np.float32)
    c = (
        rng.standard_normal((1, 384, 1, 1)).astype(np.float32)
        if per_channel
        else np.array([0.25], np.float32)
    )
    model = _shifted_conv(c, w, rng.standard_normal(384).astype(np.float32))
    peaks = []
    computation = compute._FUNCTIONS["fold_input_shift"]

    def traced(*args):
        tracemalloc.start()
        try:
            return computation(*args)
        finally:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()

    monkeypatch.setitem(compute._FUNCTIONS, "fold_input_shift", traced)
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv"]
    assert explained(report, ADD, "applied") == [""]
    assert len(peaks) == 1
    assert peaks[0] < w.size * 8 // 2, f"the fold allocated {peaks[0]} bytes at its peak"
    assert_same_outputs(model, out, feeds(model))
