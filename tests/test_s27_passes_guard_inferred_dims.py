"""ort-cpu's NCHWc guard is not made where a graph output's dims are ones ONNX inference counts
otherwise than onnxruntime computes them (a ceil_mode pool whose last window onnxruntime drops:
[1, 16, 5, 4] to inference, [1, 16, 5, 3] at run time). onnxruntime's If allocates each of its
outputs at the size its inference gives and fails the run when a branch computes another, in
both branches; on the parent ort-cpu turned such a model, which runs, into one that fails
("The output OrtValue provided for output ... has shape {1,16,5,4} but the computed output
shape for this run is {1,16,5,3}"). A graph output outside an If is written at the size
computed, so the model stays as ort-fusions leaves it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.nchwc_fallback import branches, with_block_size
from graphopt.passes.ort_nchwc import OrtNchwcLayout
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import BLOCK, conv, model, needs_nchwc

RNG = np.random.default_rng(2015)


def conv_then_pool(width: int, op: str = "AveragePool") -> onnx.ModelProto:
    """x[1, 16, 9, width] → Conv 1×1 → pool (kernel 1, stride 2, ceil_mode) → y."""
    nodes = [
        conv("x", "W", "c"),
        helper.make_node(op, ["c"], ["y"], kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1),
    ]
    weight = (RNG.standard_normal((16, 16, 1, 1)) / 4).astype(np.float32)
    return model(nodes, [1, 16, 9, width], {"W": weight}, opset=13)


def guarded(m: onnx.ModelProto, **options: object) -> onnx.ModelProto:
    return graphopt.optimize(m, make_pipeline("t", [OrtNchwcLayout(fallback=True, **options)]))


@pytest.mark.parametrize("op", ["AveragePool", "MaxPool"])
def test_no_guard_where_an_output_is_counted_apart(op: str) -> None:
    # width 6: inference counts ceil(5 / 2) + 1 = 4 columns, onnxruntime drops the last
    # window, which starts past the input (3 · 2 ≥ 6): 3
    out = guarded(conv_then_pool(6, op), block_size=8)
    assert branches(out) is None
    assert not any(n.op_type == "If" for n in out.graph.node)
    # width 7: both count 4 (the last window starts at 6 < 7): guarded as before
    assert branches(guarded(conv_then_pool(7, op), block_size=8)) is not None


@needs_nchwc
@pytest.mark.parametrize("op", ["AveragePool", "MaxPool"])
@pytest.mark.parametrize("width", [6, 7])
def test_ort_cpu_runs_where_the_original_runs(op: str, width: int) -> None:
    original = conv_then_pool(width, op)
    feeds = {"x": RNG.standard_normal((1, 16, 9, width)).astype(np.float32)}
    (expected,) = session(original, threads=1, level="disable").run(None, feeds)
    out = graphopt.optimize(original, "ort-cpu")
    candidates = [out]
    if branches(out) is not None:
        candidates = [with_block_size(out, BLOCK), with_block_size(out, BLOCK + 1)]
    for candidate in candidates:
        (got,) = session(candidate, threads=1, level="disable").run(None, feeds)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
