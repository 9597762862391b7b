"""Dims ONNX inference counts otherwise than onnxruntime, where the node that counts them apart
sits in an If branch, a Loop body or a local function (H198).

MaxPool(k 1, s 2, ceil_mode=1) of 4×4 is [1, 1, 2, 2] in onnxruntime, [1, 1, 3, 3] to ONNX
inference (which onnx.checker and onnxruntime's loader run). `dims_inference_counts_apart`
looked for such nodes only among a graph's own nodes: where the pool sat in a body, nothing
was withheld, and simplify-shape-subgraphs gave Reshape(Relu(Squeeze(y, [0])), Concat([2],
Shape(v))) a [2, -1] target, which inference divides out of its own count of 9 elements
("Dimension could not be inferred: incompatible shapes"): the result failed the checker and
onnxruntime's load where the original checks and runs (every built-in pipeline; at
ORT_DISABLE_ALL: onnxruntime's own optimizers make the original fail so too). The Squeeze
of a dim inference does not know (the If's input batch N, the Loop's iteration count) is
what lets onnxruntime run the original: a static If output would be preallocated at
inference's [1, 1, 3, 3].
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.pipeline import make_pipeline

F32, I64, BOOL = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.BOOL
vi = oh.make_tensor_value_info
X = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
V = np.zeros(2, dtype=np.float32)  # Shape(v) = [2]: Reshape to [2, 2]


def _pool(x: str, y: str) -> onnx.NodeProto:
    return oh.make_node("MaxPool", [x], [y], kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1)


def _const(name: str, value: int | list[int]) -> onnx.NodeProto:
    return oh.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.array(value, np.int64))
    )


def _reshape_to_two_rows(y: str, out: str) -> list[onnx.NodeProto]:
    """out = Reshape(Relu(Squeeze(y, [0])), Concat([2], Shape(v))): onnxruntime's 4 elements
    of the pool's [1, 1, 2, 2] (after the Squeeze) into [2, 2]."""
    return [
        _const("two", [2]),
        _const("axis0", [0]),
        oh.make_node("Squeeze", [y, "axis0"], ["q"]),
        oh.make_node("Relu", ["q"], ["r"]),  # (merge-reshapes would take the Squeeze in)
        oh.make_node("Shape", ["v"], ["sv"]),
        oh.make_node("Concat", ["two", "sv"], ["target"], axis=0),
        oh.make_node("Reshape", ["r", "target"], [out]),
    ]


def _model(nodes, inputs, outputs, functions=(), extra_opsets=()) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = oh.make_graph(nodes, "g", inputs, outputs)
    opsets = [oh.make_opsetid("", 13), *extra_opsets]
    return oh.make_model(graph, opset_imports=opsets, ir_version=8, functions=list(functions))


def _branch(name: str) -> onnx.GraphProto:
    return oh.make_graph([_pool("x", name)], name, [], [vi(name, F32, ["p", "q", "r", "s"])])


def if_branches_end_in_the_pool() -> onnx.ModelProto:
    node = oh.make_node("If", ["c"], ["y"], then_branch=_branch("o1"), else_branch=_branch("o2"))
    inputs = [vi("x", F32, ["N", 1, 4, 4]), vi("c", BOOL, []), vi("v", F32, ["M"])]
    return _model([node, *_reshape_to_two_rows("y", "z")], inputs, [vi("z", F32, ["a", "b"])])


def loop_body_ends_in_the_pool() -> onnx.ModelProto:
    body = oh.make_graph(
        [oh.make_node("Identity", ["cond_in"], ["cond_out"]), _pool("x", "o")],
        "body",
        [vi("i", I64, []), vi("cond_in", BOOL, [])],
        [vi("cond_out", BOOL, []), vi("o", F32, ["p", "q", "r", "s"])],
    )
    nodes = [
        _const("trips", 1),
        oh.make_node("Loop", ["trips", ""], ["scanned"], body=body),  # [1, 1, 1, 2, 2]
        _const("first", [0]),
        oh.make_node("Squeeze", ["scanned", "first"], ["y"]),
        *_reshape_to_two_rows("y", "z"),
    ]
    inputs = [vi("x", F32, [1, 1, 4, 4]), vi("v", F32, ["M"])]
    return _model(nodes, inputs, [vi("z", F32, ["a", "b"])])


def local_function_is_the_pool() -> onnx.ModelProto:
    pool = oh.make_function(
        "local", "Pool", ["a"], ["b"], [_pool("a", "b")], [oh.make_opsetid("", 13)]
    )
    nodes = [oh.make_node("Pool", ["x"], ["y"], domain="local"), *_reshape_to_two_rows("y", "z")]
    inputs = [vi("x", F32, ["N", 1, 4, 4]), vi("v", F32, ["M"])]
    return _model(nodes, inputs, [vi("z", F32, ["a", "b"])], [pool], [oh.make_opsetid("local", 1)])


def loop_body_holds_the_if() -> onnx.ModelProto:
    """The If and the Reshape in a Loop body (run as a model of its own: its nested If)."""
    inner = oh.make_node(
        "If", ["cond_in"], ["y"], then_branch=_branch("o1"), else_branch=_branch("o2")
    )
    body = oh.make_graph(
        [
            oh.make_node("Identity", ["cond_in"], ["cond_out"]),
            inner,
            *_reshape_to_two_rows("y", "o"),
        ],
        "body",
        [vi("i", I64, []), vi("cond_in", BOOL, [])],
        [vi("cond_out", BOOL, []), vi("o", F32, ["a", "b"])],
    )
    nodes = [_const("trips", 1), oh.make_node("Loop", ["trips", ""], ["z"], body=body)]
    inputs = [vi("x", F32, ["N", 1, 4, 4]), vi("v", F32, ["M"])]
    return _model(nodes, inputs, [vi("z", F32, ["k", "a", "b"])])


CASES = {
    "if": (if_branches_end_in_the_pool, {"x": X, "c": np.array(True), "v": V}),
    "loop": (loop_body_ends_in_the_pool, {"x": X, "v": V}),
    "function": (local_function_is_the_pool, {"x": X, "v": V}),
    "if-in-loop-body": (loop_body_holds_the_if, {"x": X, "v": V}),
}


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], level) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.log_severity_level = 4
    session = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


@pytest.mark.parametrize("pipeline", ["simplify-shape-subgraphs", "default", "ort-cpu", "tensorrt"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_body_pool_counted_apart_gets_no_minus_one_the_checker_refuses(case, pipeline) -> None:  # type: ignore[no-untyped-def]
    build, feeds = CASES[case]
    model = build()
    onnx.checker.check_model(model, full_check=True)
    if pipeline == "simplify-shape-subgraphs":
        result = graphopt.optimize(model, make_pipeline("p", [pipeline]))
    else:
        result = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(result, full_check=True)
    want = _run(model, feeds, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    got = _run(result, feeds, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    assert [w.shape for w in want] == [g.shape for g in got]
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g, w)
    assert want[0].shape[-2:] == (2, 2)  # onnxruntime's count of the pool: 4 elements
    # onnxruntime's own optimizers (ORT_ENABLE_BASIC on) make the original fail its load
    # with the checker's complaint: the result must fail no differently
    for m in (model, result):
        with pytest.raises(Exception, match="Dimension could not be inferred: incompatible"):
            _run(m, feeds, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
