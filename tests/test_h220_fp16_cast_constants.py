"""fp16_model: a constant of another type than float32 (int64, int32, double, bfloat16) that a
Cast to float reads, and whose value float16 cannot hold, keeps that Cast and its readers
float32, as a float32 constant of that value does (H220). The converter turned the Cast into a
Cast to float16: int64 70000 became inf and x / 70000 gave 0, double 1e-9 became 0 and x / 1e-9
gave inf, in float16 computed as float16 (onnx's reference implementation, as TensorRT runs
it; onnxruntime's CPU kernels drop the Cast pair and hide it)."""

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


def _model(constant: onnx.TensorProto, as_node: bool) -> onnx.ModelProto:
    nodes = [
        h.make_node("Cast", ["c"], ["cf"], name="cast", to=T.FLOAT),
        h.make_node("Div", ["x", "cf"], ["y"], name="div"),
    ]
    inits = [constant]
    if as_node:
        nodes.insert(0, h.make_node("Constant", [], ["c"], value=constant))
        inits = []
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [3])],
        [h.make_tensor_value_info("y", T.FLOAT, [3])],
        initializer=inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


CONSTANTS = {
    "int64-70000": nh.from_array(np.int64([70000]), "c"),
    "int32-100000": nh.from_array(np.int32([100000]), "c"),
    "double-1e5": nh.from_array(np.float64([1e5]), "c"),
    "double-1e-9": nh.from_array(np.float64([1e-9]), "c"),
    "bfloat16-1e5": h.make_tensor("c", T.BFLOAT16, [1], [1e5]),
}


@pytest.mark.parametrize("as_node", [False, True], ids=["initializer", "constant-node"])
@pytest.mark.parametrize("name", list(CONSTANTS))
def test_a_cast_constant_float16_cannot_hold_stays_float32(name: str, as_node: bool) -> None:
    model = _model(CONSTANTS[name], as_node)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    (cast,) = [n for n in half.graph.node if n.name == "cast"]
    assert cast.attribute[0].i == T.FLOAT
    feeds = {"x": np.float32([1e4, 3e4, 0.5])}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = ReferenceEvaluator(half).run(None, feeds)[0]
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(run(half, feeds)["y"], want, rtol=1e-6)


def test_a_cast_constant_float16_holds_still_becomes_float16() -> None:
    model = _model(nh.from_array(np.int64([3]), "c"), as_node=False)
    half = fp16_model(model)
    (cast,) = [n for n in half.graph.node if n.name == "cast"]
    assert cast.attribute[0].i == T.FLOAT16
    (div,) = [n for n in half.graph.node if n.name == "div"]
    assert "cf" in div.input  # read as float16, no Cast between


def test_a_castlike_of_a_constant_float16_cannot_hold_stays_float32() -> None:
    # CastLike(int64 70000, x): x float16, so the converter's CastLike wrote inf
    graph = h.make_graph(
        [
            h.make_node("CastLike", ["c", "x"], ["cf"], name="castlike"),
            h.make_node("Div", ["x", "cf"], ["y"], name="div"),
        ],
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [3])],
        [h.make_tensor_value_info("y", T.FLOAT, [3])],
        initializer=[nh.from_array(np.int64([70000]), "c")],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": np.float32([1e4, 3e4, 0.5])}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_allclose(ReferenceEvaluator(half).run(None, feeds)[0], want, rtol=1e-6)


@pytest.mark.parametrize("as_node", [False, True], ids=["initializer", "constant-node"])
def test_a_cast_constant_in_an_if_branch_stays_float32(as_node: bool) -> None:
    c = nh.from_array(np.int64([70000]), "tc")
    nodes = [
        h.make_node("Cast", ["tc"], ["tcf"], to=T.FLOAT),
        h.make_node("Div", ["x", "tcf"], ["ty"]),
    ]
    if as_node:
        nodes.insert(0, h.make_node("Constant", [], ["tc"], value=c))
    vi = h.make_tensor_value_info
    then = h.make_graph(nodes, "then", [], [vi("ty", T.FLOAT, [3])], [] if as_node else [c])
    other = h.make_graph(
        [h.make_node("Identity", ["x"], ["ey"])], "else", [], [vi("ey", T.FLOAT, [3])]
    )
    graph = h.make_graph(
        [h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        "g",
        [vi("x", T.FLOAT, [3]), vi("c", T.BOOL, [])],
        [vi("y", T.FLOAT, [3])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": np.float32([1e4, 3e4, 0.5]), "c": np.array(True)}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_allclose(ReferenceEvaluator(half).run(None, feeds)[0], want, rtol=1e-6)


@pytest.mark.parametrize("as_node", [False, True], ids=["initializer", "constant-node"])
def test_a_branchs_cast_of_a_main_graph_constant_stays_float32(as_node: bool) -> None:
    # the then branch reads the main graph's int64 70000: Div(x, Cast(c, float))
    vi = h.make_tensor_value_info
    c = nh.from_array(np.int64([70000]), "c")
    then = h.make_graph(
        [
            h.make_node("Cast", ["c"], ["tcf"], to=T.FLOAT),
            h.make_node("Div", ["x", "tcf"], ["ty"]),
        ],
        "then",
        [],
        [vi("ty", T.FLOAT, [3])],
    )
    other = h.make_graph(
        [h.make_node("Identity", ["x"], ["ey"])], "else", [], [vi("ey", T.FLOAT, [3])]
    )
    nodes = [h.make_node("If", ["b"], ["y"], then_branch=then, else_branch=other)]
    if as_node:
        nodes.insert(0, h.make_node("Constant", [], ["c"], value=c))
    graph = h.make_graph(
        nodes,
        "g",
        [vi("x", T.FLOAT, [3]), vi("b", T.BOOL, [])],
        [vi("y", T.FLOAT, [3])],
        initializer=[] if as_node else [c],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": np.float32([1e4, 3e4, 0.5]), "b": np.array(True)}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_allclose(ReferenceEvaluator(half).run(None, feeds)[0], want, rtol=1e-6)
