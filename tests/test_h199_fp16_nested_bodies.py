"""fp16_model (graphopt.backends.tensorrt), H199: float32 values that If/Loop/Scan bodies,
nested ones included, must keep.

Checked in onnxruntime against the float32 model (TensorRT is not needed), on fixed inputs
(np.linspace); every converted model passes onnx's full checker."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model


def _vec(name: str, n: int = 4, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, [n])


def _scalar(name: str, dtype: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, [])


def _constant(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32))
    )


def _half(model: onnx.ModelProto) -> onnx.ModelProto:
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    return half


def _loop_with_an_if_outputting(value: float) -> onnx.ModelProto:
    """z = 0.5 * Loop(2 times: v = If(cond, then: a constant of `value`, else: -v) + x)(x),
    x = Relu(x0): the constant is an output of a body (the If's then branch) nested in the
    Loop's body."""
    inner_then = helper.make_graph(
        [_constant("cb", np.full([4], value))], "inner_then", [], [_vec("cb")]
    )
    inner_else = helper.make_graph(
        [helper.make_node("Neg", ["v_in"], ["ie"], name="neg")], "inner_else", [], [_vec("ie")]
    )
    body = helper.make_graph(
        [
            helper.make_node(
                "If", ["cond"], ["t"], name="inner", then_branch=inner_then, else_branch=inner_else
            ),
            helper.make_node("Add", ["t", "x"], ["v_out"], name="add"),
            helper.make_node("Identity", ["c_in"], ["c_out"], name="keep"),
        ],
        "body",
        [_scalar("i", TensorProto.INT64), _scalar("c_in", TensorProto.BOOL), _vec("v_in")],
        [_scalar("c_out", TensorProto.BOOL), _vec("v_out")],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x0"], ["x"], name="relu"),
            helper.make_node("Loop", ["n", "", "x"], ["y"], body=body, name="loop"),
            helper.make_node("Mul", ["y", "half"], ["z"], name="mul"),
        ],
        "g",
        [_vec("x0"), _scalar("cond", TensorProto.BOOL)],
        [_vec("z")],
        [
            numpy_helper.from_array(np.array(2, np.int64), "n"),
            numpy_helper.from_array(np.float32(0.5), "half"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("value", [1e-8, 1e5])
def test_a_constant_output_of_a_body_nested_in_a_body_is_kept_float32(value, caplog):
    """The If's then branch wrote it float16 (1e-8 as 5.96e-8: z[0] 2.98e-8, not 5e-9; 1e5 as
    65504: z[0] 32752, not 50000) and fp16_model only warned. Now the main-graph Loop holding
    it stays float32, bodies and all, as for a constant its own body outputs."""
    model = _loop_with_an_if_outputting(value)
    with caplog.at_level(logging.WARNING, logger="graphopt.backends.tensorrt"):
        half = _half(model)
    x0 = np.linspace(-1.0, 1000.0, 4, dtype=np.float32)
    for cond in (True, False):
        feeds = {"x0": x0, "cond": np.array(cond)}
        got, want = run(half, feeds)["z"], run(model, feeds)["z"]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=0)
    loop = next(n for n in half.graph.node if n.op_type == "Loop")
    body_types = {v.name: v.type.tensor_type.elem_type for v in loop.attribute[0].g.output}
    assert body_types["v_out"] == TensorProto.FLOAT
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _if_dividing(source: str, nested: bool) -> onnx.ModelProto:
    """y = If(cond, then: Div(source, 1e5), else: -Relu(x)), m = Mul(x, 1e5) also an output;
    `source` is m (a blocked main-graph node's) or x (a main-graph input); `nested`: the If
    is the then branch of an outer If(cond2, else: Sigmoid(Relu(x))). Div stays float32 for
    its constant 1e5, and so does Mul."""
    then = helper.make_graph(
        [
            _constant("c", np.float32(1e5)),
            helper.make_node("Div", [source, "c"], ["t"], name="div"),
        ],
        "then",
        [],
        [_vec("t")],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["r"], ["e"], name="neg")], "else", [], [_vec("e")]
    )
    node = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other)
    if nested:
        node.output[0] = "inner_y"
        outer_then = helper.make_graph([node], "outer_then", [], [_vec("inner_y")])
        outer_else = helper.make_graph(
            [helper.make_node("Sigmoid", ["r"], ["oe"], name="sigmoid")],
            "outer_else",
            [],
            [_vec("oe")],
        )
        node = helper.make_node(
            "If", ["cond2"], ["y"], name="outer", then_branch=outer_then, else_branch=outer_else
        )
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "big"], ["m"], name="mul"),
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            node,
        ],
        "g",
        [_vec("x"), _scalar("cond", TensorProto.BOOL), _scalar("cond2", TensorProto.BOOL)],
        [_vec("y"), _vec("m")],
        [numpy_helper.from_array(np.float32(1e5), "big")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("nested", [False, True], ids=["body", "body-in-a-body"])
@pytest.mark.parametrize("source", ["m", "x"], ids=["blocked-node", "graph-input"])
def test_a_blocked_body_node_reads_a_float32_main_graph_tensor_as_it_is(source, nested):
    """Div read m (or x) through the main graph's Cast(float16) -> Cast(float): m = x * 1e5
    of x in 0.1..3 (x itself in 1e4..3e5) became inf, and y inf where the float32 model gives
    0.1..3. A blocked main-graph node already read them as they are."""
    model = _if_dividing(source, nested)
    half = _half(model)
    if source == "m":
        x = np.linspace(0.1, 3.0, 4, dtype=np.float32)
    else:
        x = np.linspace(1e4, 3e5, 4, dtype=np.float32)
    for cond in (True, False) if source == "m" else (True,):  # (-Relu(3e5) is inf in float16)
        feeds = {"x": x, "cond": np.array(cond), "cond2": np.array(True)}
        got, want = run(half, feeds), run(model, feeds)
        np.testing.assert_allclose(got["y"], want["y"], rtol=1e-3, atol=0)
        np.testing.assert_array_equal(got["m"], want["m"])
    # the Cast pair made for Div is gone: only the graph input's Cast to float16 is left
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    assert [n.input[0] for n in casts if n.attribute[0].i == TensorProto.FLOAT16] == ["x"]


def test_a_blocked_loops_body_reads_a_float32_main_graph_tensor_as_it_is():
    """The Loop stays float32 for its initial value 1e-8, its body reading m = Mul(x, 1e5)
    (blocked) through Cast(float16) (the converter's, for Relu) and the Cast(float) made for
    the body: inf where the float32 model gives 2 * x + 1e-8."""
    body = helper.make_graph(
        [
            helper.make_node("Div", ["m", "d"], ["q"], name="div"),
            helper.make_node("Add", ["v_in", "q"], ["v_out"], name="add"),
            helper.make_node("Identity", ["c_in"], ["c_out"], name="keep"),
        ],
        "body",
        [_scalar("i", TensorProto.INT64), _scalar("c_in", TensorProto.BOOL), _vec("v_in")],
        [_scalar("c_out", TensorProto.BOOL), _vec("v_out")],
        [numpy_helper.from_array(np.float32(1e5), "d")],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "big"], ["m"], name="mul"),
            helper.make_node("Loop", ["n", "", "v0"], ["y"], body=body, name="loop"),
            helper.make_node("Relu", ["m"], ["r"], name="relu"),
        ],
        "g",
        [_vec("x")],
        [_vec("y"), _vec("r")],
        [
            numpy_helper.from_array(np.array(2, np.int64), "n"),
            numpy_helper.from_array(np.full([4], 1e-8, np.float32), "v0"),
            numpy_helper.from_array(np.float32(1e5), "big"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    half = _half(model)
    x = np.linspace(0.1, 3.0, 4, dtype=np.float32)
    np.testing.assert_allclose(run(half, {"x": x})["y"], run(model, {"x": x})["y"], rtol=1e-6)


def _loop_over(body_nodes, then_nodes, inits=(), then_inits=()) -> onnx.ModelProto:
    """y = Loop(2 times, v = r = Relu(x), body_nodes), the body holding
    w = If(cond, then: then_nodes writing t, else: -v_in) and v_out = w + v_in."""
    then = helper.make_graph(then_nodes, "then", [], [_vec("t")], list(then_inits))
    other = helper.make_graph(
        [helper.make_node("Neg", ["v_in"], ["e"], name="neg")], "else", [], [_vec("e")]
    )
    body = helper.make_graph(
        [
            *body_nodes,
            helper.make_node(
                "If", ["cond"], ["w"], name="inner", then_branch=then, else_branch=other
            ),
            helper.make_node("Add", ["w", "v_in"], ["v_out"], name="add"),
            helper.make_node("Identity", ["c_in"], ["c_out"], name="keep"),
        ],
        "body",
        [_scalar("i", TensorProto.INT64), _scalar("c_in", TensorProto.BOOL), _vec("v_in")],
        [_scalar("c_out", TensorProto.BOOL), _vec("v_out")],
        list(inits),
    )
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Loop", ["n", "", "r"], ["y"], body=body, name="loop"),
        ],
        "g",
        [_vec("x"), _scalar("cond", TensorProto.BOOL)],
        [_vec("y")],
        [numpy_helper.from_array(np.array(2, np.int64), "n")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _same_in_float16(model: onnx.ModelProto) -> None:
    half = _half(model)
    x = np.linspace(0.1, 3.0, 4, dtype=np.float32)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        np.testing.assert_allclose(run(half, feeds)["y"], run(model, feeds)["y"], rtol=1e-3)


def test_casts_into_a_body_and_a_body_inside_it_both_stay():
    """Mul(v_in, 1e5) in the Loop's body and Div(a, 1e5) in the If's then branch inside it
    stay float32; the converter's Casts for them went into the Loop's body, then (a copy of
    the If's) then branch: the Cast writing the branch's output t was lost, an invalid model
    ("Graph output 't' is not an output of any node in graph")."""
    _same_in_float16(
        _loop_over(
            [helper.make_node("Mul", ["v_in", "k"], ["a"], name="mul")],
            [helper.make_node("Div", ["a", "d"], ["t"], name="div")],
            [numpy_helper.from_array(np.float32(1e5), "k")],
            [numpy_helper.from_array(np.float32(1e5), "d")],
        )
    )


def test_constants_of_a_body_and_of_a_body_inside_it_both_stay_float32():
    """Constants 1e5 in the Loop's body and 1e-6 in the If's then branch inside it, read by
    unnamed nodes: the then branch's edits (its constant made an initializer, its Mul named
    and blocked) went to a copy of it and were lost, the Mul reading a = v_in * 1e5 in float16
    (inf) and 1e-6 written as 1.01e-6."""
    _same_in_float16(
        _loop_over(
            [_constant("k", np.float32(1e5)), helper.make_node("Mul", ["v_in", "k"], ["a"])],
            [_constant("s", np.float32(1e-6)), helper.make_node("Mul", ["a", "s"], ["t"])],
        )
    )


def test_blocked_nodes_in_a_row_in_a_body_after_a_main_graph_bypass():
    """m = Mul(x, 1e5) and Div(m, 1e5) in the main graph, blocked, pass m float32 (their
    Cast pair removed); Mul(r, 1e5) and Div(p, 1e5) in an If branch likewise, but that edit
    went to a copy of the branch once the main graph's nodes were rebuilt: p through
    float16 was inf."""
    then = helper.make_graph(
        [
            helper.make_node("Mul", ["r", "kb"], ["p"], name="bmul"),
            helper.make_node("Div", ["p", "kb"], ["t"], name="bdiv"),
        ],
        "then",
        [],
        [_vec("t")],
        [numpy_helper.from_array(np.float32(1e5), "kb")],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["r"], ["e"], name="neg")], "else", [], [_vec("e")]
    )
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "big"], ["m"], name="mul"),
            helper.make_node("Div", ["m", "big"], ["q"], name="div"),
            helper.make_node("Relu", ["q"], ["r"], name="relu"),
            helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other),
        ],
        "g",
        [_vec("x"), _scalar("cond", TensorProto.BOOL)],
        [_vec("y")],
        [numpy_helper.from_array(np.float32(1e5), "big")],
    )
    _same_in_float16(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
