"""ort-nchwc-layout leaves NCHW a MaxPool/AveragePool whose output may have a height or width of
0: onnxruntime's nchwc pools die of SIGFPE on one (1.32; its own ORT_ENABLE_ALL too), where the
NCHW kernels give an empty tensor. On the parent a 3×3 pool of a 2×2 input (no padding) became
an nchwc MaxPool, and ort-cpu / ort-cpu-native's model killed the process that ran it; so did
a 2×2 pool with stride 1 of a dynamic height (1 at run time). onnxruntime counts an output dim
of (d + pads − k) / s + 1 rounded toward 0: a 2×2 pool with stride 2 of a height of 1 has one
row (and stays blocked).

The crash is checked in a child process (it would take pytest down with it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper

import graphopt
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN, OrtNchwcLayout
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import model, needs_nchwc


def pool(op: str, x_shape: list, **attrs: object) -> onnx.ModelProto:
    return model([helper.make_node(op, ["x"], ["y"], **attrs)], x_shape, {})


def nchwc_pools(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node if n.domain == NCHWC_DOMAIN and "Pool" in n.op_type]


def layout(m: onnx.ModelProto) -> onnx.ModelProto:
    return graphopt.optimize(m, make_pipeline("t", [OrtNchwcLayout(block_size=8)]))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_a_pool_with_an_empty_output_stays_nchw(op: str) -> None:
    assert nchwc_pools(layout(pool(op, [1, 16, 2, 2], kernel_shape=[3, 3]))) == []
    # VALID padding alike; a dynamic height may be 1 (0 fails the original too)
    assert nchwc_pools(layout(pool(op, [1, 16, 2, 2], kernel_shape=[3, 3], auto_pad="VALID"))) == []
    dynamic = pool(op, [1, 16, "h", 8], kernel_shape=[2, 2])
    assert nchwc_pools(layout(dynamic)) == []
    ceil = pool(op, [1, 16, 1, 8], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    assert nchwc_pools(layout(ceil)) == []


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pools_that_cannot_be_empty_are_still_blocked(op: str) -> None:
    """Controls: padding that covers the kernel, SAME padding, static dims that fit it."""
    cases = [
        pool(op, [1, 16, "h", "w"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        pool(op, [1, 16, "h", "w"], kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
        pool(op, [1, 16, 4, 4], kernel_shape=[3, 3]),
        pool(op, [1, 16, 8, 8], kernel_shape=[2, 2], strides=[2, 2]),
        pool(op, [1, 16, "h", "w"], kernel_shape=[2, 2], strides=[2, 2]),  # (d − 2) / 2 + 1 ≥ 1
        pool(op, [1, 16, 2, 3], kernel_shape=[3, 3], strides=[3, 3]),
    ]
    for m in cases:
        assert nchwc_pools(layout(m)) == [op]


RUN = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.ones([int(d) for d in sys.argv[2].split(",")], np.float32)
print(s.run(None, {"x": x})[0].shape)
"""


@needs_nchwc
@pytest.mark.parametrize("pipeline", ["ort-cpu-native", "ort-cpu"])
def test_the_optimized_model_runs_where_the_original_does(pipeline: str, tmp_path: Path) -> None:
    cases = [
        (pool("MaxPool", [1, 16, 2, 2], kernel_shape=[3, 3]), "1,16,2,2", "(1, 16, 0, 0)"),
        (
            pool("AveragePool", [1, 16, "h", 8], kernel_shape=[2, 2]),
            "1,16,1,8",
            "(1, 16, 0, 7)",
        ),
        (
            pool("MaxPool", [1, 16, "h", 8], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
            "1,16,1,8",
            "(1, 16, 0, 4)",
        ),
    ]
    for i, (m, shape, expected) in enumerate(cases):
        for tag, candidate in (("original", m), ("optimized", graphopt.optimize(m, pipeline))):
            path = tmp_path / f"{tag}{i}.onnx"
            onnx.save(candidate, str(path))
            done = subprocess.run(
                [sys.executable, "-c", RUN, str(path), shape],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, f"{tag} {pipeline}: {done.returncode} {done.stderr[-300:]}"
            assert done.stdout.strip() == expected
