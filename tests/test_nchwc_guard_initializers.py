"""The guard takes back the initializers only the NCHW branch reads without copying them; the
model it writes must be what adding copies after a commit gave: one of each name, in that order,
and no value info for them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.errors import LoadError
from graphopt.passes.ort_nchwc import OrtNchwcLayout
from graphopt.pipeline import make_pipeline

RNG = np.random.default_rng(5)
EXPECTED = ["B", "W_nchwc", "W", "nchwc_probe", "nchwc_probe_axis", "nchwc_block_size"]


def conv_relu(initializers: list[onnx.TensorProto], infos: list[str]) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    shapes = {"W": [16, 16, 3, 3], "h": [1, 16, 8, 8], "unused": [1]}
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16, 8, 8])],
        initializers,
        value_info=[
            helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, shapes[n]) for n in infos
        ],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def tensors() -> tuple[onnx.TensorProto, onnx.TensorProto]:
    w = RNG.standard_normal((16, 16, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(16).astype(np.float32)
    return numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")


def guarded(m: onnx.ModelProto) -> onnx.ModelProto:
    pipe = make_pipeline("t", [OrtNchwcLayout(fallback=True, block_size=8)])
    return graphopt.optimize(m, pipe)


def test_a_weight_named_twice_is_refused_before_the_guard():
    """An initializer name given twice is refused at load (55ab133: onnx.checker refuses the
    model and onnxruntime reads one of the two), so the guard never meets one from a file;
    it came back once here before."""
    w, b = tensors()
    with pytest.raises(LoadError, match="initializer 'W' is given twice"):
        guarded(conv_relu([w, b, w], []))
    with pytest.raises(LoadError, match="initializer 'W' is given twice"):
        guarded(conv_relu([w, b, w], ["h"]))


def test_value_info_of_a_weight_taken_back_is_dropped():
    w, b = tensors()
    out = guarded(conv_relu([w, b], ["W", "h", "unused"]))
    assert [t.name for t in out.graph.initializer] == EXPECTED
    assert [v.name for v in out.graph.value_info] == []
    assert (
        numpy_helper.to_array(out.graph.initializer[2]).tobytes()
        == numpy_helper.to_array(w).tobytes()
    )
