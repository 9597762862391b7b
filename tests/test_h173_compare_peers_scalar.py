"""compare_peers' max output difference takes a model's 0-d (scalar) outputs.

onnxruntime gives a scalar output (ReduceMax with keepdims=0, a loss, a count) as a 0-d array;
the NaN handling of 3fb18ce set elements of `np.abs(a - b)`, which for 0-d arrays is a numpy
scalar: "'numpy.float64' object does not support item assignment", a traceback that ended
the whole comparison.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import onnx.parser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import compare_peers  # benchmarks/ is a folder of scripts, not a package

_MODEL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3] x) => (float peak, float[2, 3] y) {
    scaled = Mul(x, k)
    peak = ReduceMax<keepdims = 0>(scaled)
    y = Relu(scaled)
}
"""


def _outputs(k: float) -> list[list[np.ndarray]]:
    """The model's two outputs (a 0-d one first) on two feeds, as onnxruntime gives them."""
    from graphopt.backends.onnxruntime import session

    model = onnx.parser.parse_model(_MODEL)
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.float32(k), "k"))
    sess = session(model, threads=1, level="disable")
    feeds = [
        {"x": np.arange(6, dtype=np.float32).reshape(2, 3)},
        {"x": np.arange(-3, 3, dtype=np.float32).reshape(2, 3)},
    ]
    return [sess.run(None, f) for f in feeds]


def test_a_scalar_output_is_compared() -> None:
    reference, got = _outputs(1.0), _outputs(1.25)
    assert reference[0][0].shape == ()  # (what onnxruntime gives for a scalar output)
    assert compare_peers.max_rel_diff(reference, reference) == 0.0
    # peak: 5 vs 6.25 on the first feed, 2 vs 2.5 on the second; y likewise: 0.25 of its range
    assert math.isclose(compare_peers.max_rel_diff(reference, got), 0.25, rel_tol=1e-6)


def test_a_nan_in_a_scalar_output_is_a_nan_difference() -> None:
    reference = _outputs(1.0)
    got = [[o.copy() for o in outs] for outs in reference]
    got[1][0] = np.array(np.nan, dtype=np.float32)
    assert math.isnan(compare_peers.max_rel_diff(reference, got))
    both = [[np.array(np.nan, dtype=np.float32)]]
    assert compare_peers.max_rel_diff(both, both) == 0.0  # the same NaN is no difference
