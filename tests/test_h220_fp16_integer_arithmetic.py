"""fp16_model: float arithmetic on integers that a Cast takes back to an integer type (shape
arithmetic: Shape -> Cast(float) -> Mul(0.5) -> Cast(int64) -> Reshape) stays float32 (H220).
The converter made it float16, which holds integers exactly up to 2048 only: 4098 became 4096
and Reshape asked for 2048 columns, not 2049; Slice(x, 0, Floor(2049 / 3)) kept 682 elements, not 683. Checked in
onnx's reference implementation (float16 computed as float16, as TensorRT does); onnxruntime's
CPU kernels compute such float16 ops in float32 and hide it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.reference import ReferenceEvaluator

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model


def _model(nodes: list[onnx.NodeProto], n: int, inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [n])],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
        initializer=inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _same(model: onnx.ModelProto, n: int) -> onnx.ModelProto:
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": (np.arange(n, dtype=np.float32) / n).astype(np.float32)}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = ReferenceEvaluator(half).run(None, feeds)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-3)
    np.testing.assert_allclose(run(half, feeds)["y"], want, rtol=1e-3)
    return half


def test_a_reshape_size_computed_in_float_stays_float32() -> None:
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Cast", ["s"], ["sf"], name="to_float", to=T.FLOAT),
        h.make_node("Mul", ["sf", "half"], ["sh"], name="mul"),
        h.make_node("Cast", ["sh"], ["si"], name="to_int", to=T.INT64),
        h.make_node("Concat", ["two", "si"], ["shape"], axis=0),
        h.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [nh.from_array(np.float32([0.5]), "half"), nh.from_array(np.int64([2]), "two")]
    half = _same(_model(nodes, 4098, inits), 4098)
    assert next(i for i in half.graph.initializer if i.name == "half").data_type == T.FLOAT


def test_a_slice_end_floor_divided_in_float_stays_float32() -> None:
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Cast", ["s"], ["sf"], to=T.FLOAT),
        h.make_node("Div", ["sf", "three"], ["d"]),
        h.make_node("Floor", ["d"], ["f"]),
        h.make_node("Cast", ["f"], ["end"], to=T.INT64),
        h.make_node("Slice", ["x", "zero", "end"], ["y"]),
    ]
    inits = [nh.from_array(np.float32([3.0]), "three"), nh.from_array(np.int64([0]), "zero")]
    _same(_model(nodes, 2049, inits), 2049)


def test_integers_made_float_for_an_activation_stay_float16() -> None:
    # no Cast back to an integer: the Cast to float is the activation's, converted as before
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Cast", ["s"], ["sf"], name="to_float", to=T.FLOAT),
        h.make_node("Mul", ["x", "sf"], ["y"], name="mul"),
    ]
    half = fp16_model(_model(nodes, 8, []))
    (cast,) = [n for n in half.graph.node if n.name == "to_float"]
    assert cast.attribute[0].i == T.FLOAT16
