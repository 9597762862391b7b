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


def _reference_same(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    want = ReferenceEvaluator(model).run(None, feeds)
    got = ReferenceEvaluator(half).run(None, feeds)
    for w, g in zip(want, got, strict=True):
        assert np.asarray(g).shape == np.asarray(w).shape
        if np.asarray(w).dtype.kind in "iu":
            np.testing.assert_array_equal(g, w)  # integers: exact
        else:
            np.testing.assert_allclose(g, w, rtol=1e-3)


def test_a_loop_bodys_index_arithmetic_stays_float32() -> None:
    # the body writes Cast(Cast(i, float) * 0.5, int64) per iteration: 2100 for i = 4199
    vi = h.make_tensor_value_info
    body = h.make_graph(
        [
            h.make_node("Cast", ["i"], ["i_f"], to=T.FLOAT),
            h.make_node("Mul", ["i_f", "half_b"], ["i_h"]),
            h.make_node("Cast", ["i_h"], ["i_s"], to=T.INT64),
            h.make_node("Unsqueeze", ["i_s", "ax"], ["i_int"]),
            h.make_node("Identity", ["acc_in"], ["acc_out"]),
            h.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [vi("i", T.INT64, []), vi("cond_in", T.BOOL, []), vi("acc_in", T.FLOAT, [1])],
        [vi("cond_out", T.BOOL, []), vi("acc_out", T.FLOAT, [1]), vi("i_int", T.INT64, [1])],
        initializer=[nh.from_array(np.float32(0.5), "half_b"), nh.from_array(np.int64([0]), "ax")],
    )
    graph = h.make_graph(
        [h.make_node("Loop", ["trip", "c0", "acc0"], ["acc", "idx"], body=body)],
        "g",
        [vi("trip", T.INT64, []), vi("c0", T.BOOL, []), vi("acc0", T.FLOAT, [1])],
        [vi("acc", T.FLOAT, [1]), vi("idx", T.INT64, [None, 1])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    feeds = {"trip": np.array(4200, np.int64), "c0": np.array(True), "acc0": np.float32([0])}
    _reference_same(model, feeds)


def test_an_if_branchs_arithmetic_on_an_outer_shape_stays_float32() -> None:
    # Slice(x, 0, Cast(Cast(Shape(x), float) * k, int64)), the Mul and Cast in the branches
    def branch(name: str, k: float) -> onnx.GraphProto:
        return h.make_graph(
            [
                h.make_node("Mul", ["sf", f"{name}_k"], [f"{name}_m"]),
                h.make_node("Cast", [f"{name}_m"], [f"{name}_i"], to=T.INT64),
            ],
            name,
            [],
            [h.make_tensor_value_info(f"{name}_i", T.INT64, [1])],
            initializer=[nh.from_array(np.float32([k]), f"{name}_k")],
        )

    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Cast", ["s"], ["sf"], to=T.FLOAT),
        h.make_node(
            "If", ["c"], ["n"], then_branch=branch("t", 0.5), else_branch=branch("e", 0.25)
        ),
        h.make_node("Slice", ["x", "zero", "n"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [4099]), h.make_tensor_value_info("c", T.BOOL, [])],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
        initializer=[nh.from_array(np.int64([0]), "zero")],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    for c in (True, False):
        x = (np.arange(4099, dtype=np.float32) / 4099).astype(np.float32)
        _reference_same(model, {"x": x, "c": np.array(c)})


def test_a_reshape_size_castlike_to_float_stays_float32() -> None:
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("CastLike", ["s", "x"], ["sf"]),
        h.make_node("Mul", ["sf", "half"], ["sh"]),
        h.make_node("CastLike", ["sh", "two"], ["si"]),
        h.make_node("Concat", ["two", "si"], ["shape"], axis=0),
        h.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [nh.from_array(np.float32([0.5]), "half"), nh.from_array(np.int64([2]), "two")]
    _same(_model(nodes, 4098, inits), 4098)


def test_a_length_mask_compared_in_float_stays_float32() -> None:
    # Where(Less(Cast(Range(0, n), float), Cast(length, float)), x, 0): a sequence mask
    vi = h.make_tensor_value_info
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Squeeze", ["s"], ["n"]),
        h.make_node("Range", ["zero", "n", "one"], ["pos"]),
        h.make_node("Cast", ["pos"], ["posf"], to=T.FLOAT),
        h.make_node("Cast", ["len"], ["lenf"], to=T.FLOAT),
        h.make_node("Less", ["posf", "lenf"], ["keep"]),
        h.make_node("Where", ["keep", "x", "zf"], ["y"]),
    ]
    inits = [
        nh.from_array(np.int64(0), "zero"),
        nh.from_array(np.int64(1), "one"),
        nh.from_array(np.float32(0), "zf"),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [vi("x", T.FLOAT, [2050]), vi("len", T.INT64, [])],
        [vi("y", T.FLOAT, [2050])],
        initializer=inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    feeds = {"x": np.ones(2050, np.float32), "len": np.array(2049, np.int64)}
    _reference_same(model, feeds)  # float16: position 2048 dropped (2049 -> 2048)


def test_a_comparison_with_an_activation_stays_float16() -> None:
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Cast", ["s"], ["sf"], to=T.FLOAT),
        h.make_node("Less", ["x", "sf"], ["keep"], name="less"),
        h.make_node("Where", ["keep", "x", "sf"], ["y"]),
    ]
    half = fp16_model(_model(nodes, 8, []))
    (less,) = [n for n in half.graph.node if n.name == "less"]
    to_float = [n for n in half.graph.node if n.op_type == "Cast" and n.attribute[0].i == T.FLOAT]
    assert not any(n.output[0] in less.input for n in to_float)  # reads float16, as before
