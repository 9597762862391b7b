"""A Loop body is shape-inferred once per optimize (review 12): graphopt.subgraphs infers the
body's model to find which loop-carried shapes every iteration keeps, and the passes that then
run over that very model use those facts instead of inferring it again."""

from __future__ import annotations

from unittest import mock

import numpy as np
import onnx
import onnx.helper as oh

import graphopt
import graphopt.analysis.shapes as shapes
from tests.conftest import assert_same_outputs

F, B, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.BOOL, onnx.TensorProto.INT64


def _loop_model(carried_grows: bool = False) -> onnx.ModelProto:
    """y = Loop 3 times: v ← Relu(v · one_b) (one_b: the body's own ones, which the noop pass
    drops after asking for shapes); with `carried_grows`, v ← Concat(v, v) first (its shape
    changes every iteration, so no shape of v is kept)."""
    vi = oh.make_tensor_value_info
    grow = [oh.make_node("Concat", ["v", "v"], ["v2"], axis=0)] if carried_grows else []
    body = oh.make_graph(
        [
            oh.make_node("Identity", ["c"], ["c_out"]),
            *grow,
            oh.make_node("Mul", ["v2" if carried_grows else "v", "one_b"], ["s"]),
            oh.make_node("Relu", ["s"], ["v_out"]),
        ],
        "body",
        [vi("i", I64, []), vi("c", B, []), vi("v", F, [1, 4])],
        [vi("c_out", B, []), vi("v_out", F, [1, 4])],
        [oh.make_tensor("one_b", F, [1, 4], [1.0] * 4)],
    )
    graph = oh.make_graph(
        [oh.make_node("Loop", ["trips", "go", "x"], ["y"], name="loop", body=body)],
        "g",
        [vi("x", F, [1, 4])],
        [vi("y", F, None)],
        [oh.make_tensor("trips", I64, [], [3]), oh.make_tensor("go", B, [], [True])],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


def _optimize_counting(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[list[str]]]:
    """optimize(model), and the op types of every graph shape facts were inferred for."""
    real = shapes._infer
    calls: list[list[str]] = []

    def counting(graph):
        calls.append(sorted(n.op_type for n in graph.nodes.values()))
        return real(graph)

    with mock.patch.object(shapes, "_infer", counting):
        return graphopt.optimize(model), calls


def _body_ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node[0].attribute[0].g.node]


def test_a_loop_body_is_inferred_once():
    model = _loop_model()
    optimized, calls = _optimize_counting(model)
    assert _body_ops(optimized) == ["Identity", "Relu"]  # the Mul by ones went, shapes known
    assert calls.count(["Identity", "Mul", "Relu"]) == 1
    # the graph around it: once at most (session 13: inferred whole only when a pass asks;
    # the body's outer reads are typed from the nodes they depend on, here none: [])
    assert calls.count(["Loop"]) <= 1
    assert_same_outputs(model, optimized, {"x": np.array([[-1, 2, -3, 4]], np.float32)})


def test_a_body_whose_carried_shape_changes_is_inferred_by_its_passes():
    # v's shape is not kept, so the inferences that found it out typed v otherwise than the
    # body's model the passes run on: those facts are not theirs, and they infer their own
    model = _loop_model(carried_grows=True)
    optimized, calls = _optimize_counting(model)
    body_calls = [c for c in calls if "Mul" in c]
    assert len(body_calls) == 2  # the finding (v as [1, 4]), then the passes' (v untyped)
    # with v untyped, Mul(Concat(v, v), one_b) may broadcast to another shape: it stays (the
    # facts of v as [1, 4] would have let the noop pass drop it)
    assert "Mul" in _body_ops(optimized)
    assert_same_outputs(model, optimized, {"x": np.array([[-1, 2, -3, 4]], np.float32)})
