"""Shapes an If/Loop/Scan body declares are no facts: no runtime holds a body's inputs, outputs
or value_info to them (a loop-carried value a Concat grows keeps declaring the first
iteration's shape, a Scan state declared [2] is fed what the Scan's input has). What is
certain stays: a Loop's iteration number and condition as declared, a loop-invariant value's
shape from the scope around, a Scan state's and slice's from the Scan's inputs.

Each model here runs in onnxruntime as it is; before the fix every pipeline changed its
outputs (or made a body onnxruntime cannot run)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run, session
from tests.conftest import assert_same_outputs

PIPELINES = ("default", "simplify", "ort-cpu", "tensorrt", "ort-fusions")
F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _vi(name: str, dtype: int, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _model(nodes: list, inputs: list, outputs: list, inits: tuple = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _loop(
    body_nodes: list,
    carried: list[tuple[str, list | None, str, list | None]],
    inits: tuple = (),
    iteration: list | None = None,
) -> onnx.ModelProto:
    """v_final... = Loop(M, "", initial...): carried (body input, its declared shape, outer
    initial value, that one's shape); the body's output for carried v is v_out, or v itself
    where the body passes it on (no node writes v_out)."""
    written = {o for n in body_nodes for o in n.output}
    outs = [f"{v}_out" if f"{v}_out" in written else v for v, *_ in carried]
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), *body_nodes],
        "body",
        [_vi("i", I64, iteration or []), _vi("c", B, [])]
        + [_vi(v, F, d) for v, d, _, _ in carried],
        [_vi("c_out", B, []), *(_vi(o, F, None) for o in outs)],
        list(inits),
    )
    loop = helper.make_node(
        "Loop",
        ["M", "", *(x for _, _, x, _ in carried)],
        [f"{v}_final" for v, *_ in carried],
        body=body,
    )
    return _model(
        [loop],
        [_vi("M", I64, []), *(_vi(x, F, d) for _, _, x, d in carried)],
        [_vi(f"{v}_final", F, None) for v, *_ in carried],
    )


def _scan(body_nodes: list, state: list | None, xi: list | None, y=("y", None)) -> onnx.ModelProto:
    """sf, ys = Scan(s0[K], xs[T, K]) over a body (s declared `state`, xi declared `xi`) that
    writes s_out and y."""
    body = helper.make_graph(
        body_nodes,
        "body",
        [_vi("s", F, state), _vi("xi", F, xi)],
        [_vi("s_out", F, None), _vi(*y[:1], F, y[1])],
    )
    scan = helper.make_node("Scan", ["s0", "xs"], ["sf", "ys"], body=body, num_scan_inputs=1)
    return _model(
        [scan],
        [_vi("s0", F, ["K"]), _vi("xs", F, ["T", "K"])],
        [_vi("sf", F, None), _vi("ys", F, None)],
    )


def _body_ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node[0].attribute[0].g.node]


AX0 = numpy_helper.from_array(np.array([0], np.int64), "ax0")
MINUS1 = numpy_helper.from_array(np.array([-1], np.int64), "minus1")
ONE = numpy_helper.from_array(np.array(1, np.int64), "one")


def _as_float(op: str, source: str, out: str) -> list:
    """out = float(op(source)) (Size: a scalar, Shape: a vector)."""
    return [
        helper.make_node(op, [source], [f"{out}_i"]),
        helper.make_node("Cast", [f"{out}_i"], [out], to=F),
    ]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_growing_loop_carried_size_is_not_folded(pipeline):
    """v = Concat(v, [Size(v)]) from v = [1, 2], the body declaring v [2]: Size(v) is 2, 3, 4
    in turn; before the fix it folded to the declaration's 2."""
    nodes = [
        *_as_float("Size", "v", "n"),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["v", "n1"], ["v_out"], axis=0),
    ]
    model = _loop(nodes, [("v", [2], "x", [2])], (AX0,))
    feeds = {"M": np.array(3, np.int64), "x": np.array([1, 2], np.float32)}
    out = graphopt.optimize(model, pipeline)
    np.testing.assert_array_equal(run(out, feeds)["v_final"], [1, 2, 2, 3, 4])
    assert_same_outputs(model, out, feeds)


def test_reshape_kept_when_the_carried_rank_grows():
    """w = Concat(w, Reshape(v, [-1])) while v = Unsqueeze(v, 0): v declared [2] made the
    Reshape a no-op (eliminate-noops), and the Concat then met a rank-2 v."""
    nodes = [
        helper.make_node("Unsqueeze", ["v", "ax0"], ["v_out"]),
        helper.make_node("Reshape", ["v", "minus1"], ["r"]),
        helper.make_node("Concat", ["w", "r"], ["w_out"], axis=0),
    ]
    model = _loop(nodes, [("v", [2], "x", [2]), ("w", ["W"], "w0", [2])], (AX0, MINUS1))
    feeds = {"M": np.array(3, np.int64), "x": np.array([1, 2], np.float32)}
    feeds["w0"] = np.array([5, 6], np.float32)
    out = graphopt.optimize(model)
    assert "Reshape" in _body_ops(out)
    np.testing.assert_array_equal(run(out, feeds)["w_final"], [5, 6, 1, 2, 1, 2, 1, 2])
    assert_same_outputs(model, out, feeds)


def test_transpose_of_a_growing_carried_value_stays_a_transpose():
    """u = Transpose(v) while v = Concat(v, v): v declared [1, 2] made the Transpose a
    Reshape to [2, 1] (transpose-to-reshape), which the second iteration's [2, 2] refuses."""
    nodes = [
        helper.make_node("Transpose", ["v"], ["u_out"], perm=[1, 0]),
        helper.make_node("Concat", ["v", "v"], ["v_out"], axis=0),
    ]
    model = _loop(nodes, [("v", [1, 2], "x", [1, 2]), ("u", [2, 1], "u0", [2, 1])])
    feeds = {"M": np.array(3, np.int64), "x": np.array([[1, 2]], np.float32)}
    feeds["u0"] = np.zeros((2, 1), np.float32)
    out = graphopt.optimize(model)
    np.testing.assert_array_equal(run(out, feeds)["u_final"], [[1] * 4, [2] * 4])
    assert_same_outputs(model, out, feeds)


def test_matmul_add_of_a_carried_value_whose_rank_grows_is_no_gemm():
    """y = MatMul(v, W) + b, v = Unsqueeze(y, 0): v declared [2, 2] gave the rule engine rank 2
    and made a Gemm, which a rank-3 v refuses. (onnxruntime's own optimizer fuses the same at
    its default level, so both run unoptimized there.)"""
    w = numpy_helper.from_array(np.array([[1, 2], [3, 4]], np.float32), "W")
    b = numpy_helper.from_array(np.array([0.5, -1], np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["v", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["y"]),
        helper.make_node("Unsqueeze", ["y", "ax0"], ["v_out"]),
    ]
    model = _loop(nodes, [("v", [2, 2], "x", [2, 2])], (AX0, w, b))
    feeds = {"M": np.array(3, np.int64), "x": np.array([[1, 2], [3, 4]], np.float32)}
    for pipeline in ("default", "tensorrt"):
        out = graphopt.optimize(model, pipeline)
        assert "Gemm" not in _body_ops(out), pipeline
        want = session(model, level="disable").run(None, feeds)[0]
        got = session(out, level="disable").run(None, feeds)[0]
        assert got.shape == want.shape == (1, 1, 1, 2, 2)
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_scan_state_declared_smaller_than_fed():
    """s_out = xi · Size(s), the state declared [2] but fed s0 of 5 elements: Size(s) is 5."""
    nodes = [*_as_float("Size", "s", "n"), helper.make_node("Mul", ["xi", "n"], ["s_out"])]
    nodes.append(helper.make_node("Neg", ["xi"], ["y"]))
    model = _scan(nodes, [2], ["K"])
    feeds = {"s0": np.ones(5, np.float32), "xs": np.arange(10, dtype=np.float32).reshape(2, 5)}
    out = graphopt.optimize(model)
    np.testing.assert_array_equal(run(out, feeds)["sf"], [25, 30, 35, 40, 45])
    assert_same_outputs(model, out, feeds)


def test_scan_slice_declared_smaller_than_fed():
    """s_out = s · Size(xi), each slice declared [2] but 5 long."""
    nodes = [*_as_float("Size", "xi", "n"), helper.make_node("Mul", ["s", "n"], ["s_out"])]
    nodes.append(helper.make_node("Neg", ["n"], ["y"]))
    model = _scan(nodes, ["K"], [2], ("y", []))
    feeds = {"s0": np.ones(5, np.float32), "xs": np.arange(10, dtype=np.float32).reshape(2, 5)}
    out = graphopt.optimize(model)
    np.testing.assert_array_equal(run(out, feeds)["ys"], [-5, -5])
    assert_same_outputs(model, out, feeds)


def _outer_reads_dim1(node: onnx.NodeProto, y: str, extra_inputs: list) -> onnx.ModelProto:
    """out = y · dim 1 of y, y the output of `node` (an If or a Loop)."""
    nodes = [
        node,
        helper.make_node("Shape", [y], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["k"]),
        helper.make_node("Cast", ["k"], ["kf"], to=F),
        helper.make_node("Mul", [y, "kf"], ["out"]),
    ]
    return _model(nodes, extra_inputs, [_vi("out", F, None)], (ONE,))


@pytest.mark.parametrize("stale", ["input", "value_info", "output"])
def test_loop_scan_output_shape_is_not_taken_from_the_body(stale):
    """ys = Loop's scan output of y = Neg(Neg(v)), v = x of shape [K] fed 5 long, the body
    declaring [2] for v, for y's Neg(v) (value_info) or for y: ONNX inference made ys
    [?, 2] and Gather(Shape(ys), 1) folded to 2 in the graph around the Loop."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["c"], ["c_out"]),
            helper.make_node("Neg", ["v"], ["y0"]),
            helper.make_node("Neg", ["y0"], ["y"]),
            helper.make_node("Abs", ["v"], ["v_out"]),
        ],
        "body",
        [_vi("i", I64, []), _vi("c", B, []), _vi("v", F, [2] if stale == "input" else None)],
        [
            _vi("c_out", B, []),
            _vi("v_out", F, None),
            _vi("y", F, [2] if stale == "output" else None),
        ],
        value_info=[_vi("y0", F, [2])] if stale == "value_info" else [],
    )
    loop = helper.make_node("Loop", ["M", "", "x"], ["vf", "ys"], body=body)
    model = _outer_reads_dim1(loop, "ys", [_vi("M", I64, []), _vi("x", F, ["K"])])
    feeds = {"M": np.array(2, np.int64), "x": np.ones(5, np.float32)}
    for pipeline in PIPELINES:
        out = graphopt.optimize(model, pipeline)
        np.testing.assert_array_equal(run(out, feeds)["out"], np.full((2, 5), 5.0), pipeline)


def test_if_output_dim_is_not_taken_from_the_branches():
    """y = If(c, x, -x), x [N, M] fed [2, 5], both branches declaring their output [?, 3]:
    Gather(Shape(y), 1) folded to 3."""
    then = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])], "then", [], [_vi("t", F, ["A", 3])]
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])], "else", [], [_vi("e", F, ["B", 3])]
    )
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
    model = _outer_reads_dim1(node, "y", [_vi("c", B, []), _vi("x", F, ["N", "M"])])
    for c in (True, False):
        feeds = {"c": np.array(c), "x": np.ones((2, 5), np.float32)}
        out = graphopt.optimize(model)
        np.testing.assert_array_equal(run(out, feeds)["out"], np.full((2, 5), 5.0 if c else -5.0))


def test_what_is_certain_still_folds():
    """A loop-invariant value (the body passes v on) has the Loop's initial value's shape
    [5], a carried w that every iteration keeps at [1] (w · k: by induction) the initial's too,
    a Scan state its initial value's [3], and a Loop's iteration number the rank the body
    declares ([1], as paddle2onnx writes it; onnxruntime feeds that): Size(v), Size(w),
    Size(s) fold (the body declares none of them a shape), and Reshape(i, [1]) is a no-op."""
    nodes = [
        *_as_float("Size", "v", "n"),
        *_as_float("Size", "w", "m"),
        helper.make_node("Reshape", ["i", "one1"], ["i1"]),
        helper.make_node("Cast", ["i1"], ["f"], to=F),
        helper.make_node("Add", ["n", "f"], ["nf"]),
        helper.make_node("Add", ["nf", "m"], ["k"]),
        helper.make_node("Mul", ["w", "k"], ["w_out"]),
    ]
    one1 = numpy_helper.from_array(np.array([1], np.int64), "one1")
    loop = _loop(nodes, [("v", None, "x", [5]), ("w", None, "w0", [1])], (one1,), iteration=[1])
    feeds = {"M": np.array(3, np.int64), "x": np.ones(5, np.float32), "w0": np.ones(1, np.float32)}
    out = graphopt.optimize(loop)
    assert "Size" not in _body_ops(out) and "Reshape" not in _body_ops(out), _body_ops(out)
    np.testing.assert_array_equal(run(out, feeds)["w_final"], [6 * 7 * 8])
    assert_same_outputs(loop, out, feeds)

    scan_nodes = [*_as_float("Size", "s", "n"), helper.make_node("Mul", ["xi", "n"], ["s_out"])]
    scan_nodes.append(helper.make_node("Neg", ["xi"], ["y"]))
    scan = _scan(scan_nodes, None, None)
    scan.graph.input[0].CopyFrom(_vi("s0", F, [3]))
    scan.graph.input[1].CopyFrom(_vi("xs", F, ["T", 3]))
    out = graphopt.optimize(scan)
    assert "Size" not in _body_ops(out), _body_ops(out)
    feeds = {"s0": np.ones(3, np.float32), "xs": np.arange(6, dtype=np.float32).reshape(2, 3)}
    np.testing.assert_array_equal(run(out, feeds)["sf"], [9, 12, 15])
    assert_same_outputs(scan, out, feeds)
