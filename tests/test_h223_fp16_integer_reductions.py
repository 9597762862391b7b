"""fp16_model: float arithmetic on integers kept float32 (H220's _block_integer_arithmetic) is
followed through ReduceMax/ReduceMin/ReduceSum and Sum too (H223). Those were not among its
ops, so Cast(ReduceMax(Cast(Shape(x), float) + 1), int64) became float16 and 4101 rounded to
4100: Slice(x, 0, that - 1) kept 4099 of x's 4100 elements in onnx's reference implementation
(float16 computed as float16, as TensorRT does); onnxruntime's CPU kernels hide it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.reference import ReferenceEvaluator

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model

N = 4100


def _model(reduce: onnx.NodeProto) -> onnx.ModelProto:
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Cast", ["s"], ["sf"], to=T.FLOAT),
        h.make_node("Add", ["sf", "one"], ["a"]),
        reduce,
        h.make_node("Cast", ["m"], ["end"], name="to_int", to=T.INT64),
        h.make_node("Sub", ["end", "one_i"], ["end1"]),
        h.make_node("Slice", ["x", "zero", "end1"], ["y"]),
    ]
    inits = [
        nh.from_array(np.float32([1.0]), "one"),
        nh.from_array(np.int64([1]), "one_i"),
        nh.from_array(np.int64([0]), "zero"),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [N])],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
        initializer=inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize(
    "reduce",
    [
        h.make_node("ReduceMax", ["a"], ["m"], keepdims=1),
        h.make_node("ReduceMin", ["a"], ["m"], keepdims=1),
        h.make_node("Sum", ["a"], ["m"]),
    ],
    ids=["ReduceMax", "ReduceMin", "Sum"],
)
def test_an_integer_reduced_in_float_stays_float32(reduce: onnx.NodeProto) -> None:
    model = _model(reduce)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": (np.arange(N, dtype=np.float32) / N).astype(np.float32)}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    assert want.shape == (N,)
    assert ReferenceEvaluator(half).run(None, feeds)[0].shape == want.shape
    got = run(half, feeds)["y"]  # (x's values go through float16: rounded)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-3)
    one = next(i for i in half.graph.initializer if i.name == "one")
    assert one.data_type == T.FLOAT


def test_a_reduction_of_an_activation_stays_float16() -> None:
    # no integer made float: ReduceMax of x is converted as before
    nodes = [h.make_node("ReduceMax", ["x"], ["y"], name="max", keepdims=1)]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [8])],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
    )
    half = fp16_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))
    (node,) = [n for n in half.graph.node if n.name == "max"]
    casts = [n for n in half.graph.node if n.op_type == "Cast" and n.output[0] in node.input]
    assert [c.attribute[0].i for c in casts] == [T.FLOAT16]
