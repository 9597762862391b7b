"""A Range whose length onnxruntime versions count apart, inside a Loop body or a local
function (H198).

Range(-0.1, 0.20000002, 0.3) of float32 is 1 element to ONNX inference (onnxruntime 1.23.2's
count) and 2 in onnxruntime 1.32. `dims_in_dispute` looked for such Ranges only among a
graph's own nodes; inside a Loop body (or a function) inference counted it and gave the
Loop's output its count, so the shape facts said Squeeze(loop_out, [0]) is [1] and
eliminate-noops dropped Slice(., 0, 1) as a no-op: the result gave 2 elements where the
original gives 1 (default pipeline too). The Loop's iteration count, unknown to inference,
keeps onnxruntime from preallocating the output at inference's count: the original runs.
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
BOUNDS = (-0.1, 0.20000002, 0.3)  # 1 element to inference, 2 in onnxruntime 1.32


def _range(prefix: str, out: str) -> list[onnx.NodeProto]:
    bounds = [
        oh.make_node("Constant", [], [prefix + k], value=numpy_helper.from_array(np.float32(v)))
        for k, v in zip("sld", BOUNDS, strict=True)
    ]
    return [*bounds, oh.make_node("Range", [prefix + "s", prefix + "l", prefix + "d"], [out])]


def _model(nodes, functions=(), extra_opsets=()) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    """`nodes`, then z = Slice(Squeeze(y, [0]), [0], [1]): a no-op only at inference's count."""
    tail = [
        oh.make_node("Squeeze", ["y", "axis0"], ["q"]),
        oh.make_node("Slice", ["q", "start", "end"], ["z"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array(v, np.int64), name)
        for name, v in (("axis0", [0]), ("start", [0]), ("end", [1]), ("trips", 1))
    ]
    graph = oh.make_graph([*nodes, *tail], "g", [], [vi("z", F32, ["a"])], initializers)
    opsets = [oh.make_opsetid("", 13), *extra_opsets]
    return oh.make_model(graph, opset_imports=opsets, ir_version=8, functions=list(functions))


def range_in_a_loop_body() -> onnx.ModelProto:
    body = oh.make_graph(
        [oh.make_node("Identity", ["cond_in"], ["cond_out"]), *_range("b", "o")],
        "body",
        [vi("i", I64, []), vi("cond_in", BOOL, [])],
        [vi("cond_out", BOOL, []), vi("o", F32, ["p"])],
    )
    return _model([oh.make_node("Loop", ["trips", ""], ["y"], body=body)])


def range_in_a_local_function() -> onnx.ModelProto:
    function = oh.make_function(
        "local", "R", [], ["r"], _range("f", "r"), [oh.make_opsetid("", 13)]
    )
    nodes = [
        oh.make_node("R", [], ["r1"], domain="local"),
        oh.make_node("Unsqueeze", ["r1", "axis0"], ["y"]),
    ]
    return _model(nodes, [function], [oh.make_opsetid("local", 1)])


def range_in_a_loop_in_a_loop_body() -> onnx.ModelProto:
    """The Loop and the Slice in another Loop's body (run as a model of its own, told by the
    main graph that a body below holds a Range), and the Slice in the main graph too."""
    inner = oh.make_graph(
        [oh.make_node("Identity", ["c_in"], ["c_out"]), *_range("b", "r")],
        "inner",
        [vi("j", I64, []), vi("c_in", BOOL, [])],
        [vi("c_out", BOOL, []), vi("r", F32, ["p"])],
    )
    ints = {"t1": 1, "a0": [0], "s0": [0], "e1": [1]}
    body = oh.make_graph(
        [
            oh.make_node("Identity", ["cond_in"], ["cond_out"]),
            *[
                oh.make_node(
                    "Constant", [], [k], value=numpy_helper.from_array(np.array(v, np.int64))
                )
                for k, v in ints.items()
            ],
            oh.make_node("Loop", ["t1", ""], ["scanned"], body=inner),
            oh.make_node("Squeeze", ["scanned", "a0"], ["q0"]),
            oh.make_node("Slice", ["q0", "s0", "e1"], ["o"]),
        ],
        "body",
        [vi("i", I64, []), vi("cond_in", BOOL, [])],
        [vi("cond_out", BOOL, []), vi("o", F32, ["p"])],
    )
    return _model([oh.make_node("Loop", ["trips", ""], ["y"], body=body)])


CASES = {
    "loop": range_in_a_loop_body,
    "function": range_in_a_local_function,
    "loop-in-loop": range_in_a_loop_in_a_loop_body,
}


def _run(model: onnx.ModelProto, level) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.log_severity_level = 4
    session = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    return session.run(None, {})


@pytest.mark.parametrize("pipeline", ["eliminate-noops", "default"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_slice_of_a_body_range_counted_apart_is_kept(case: str, pipeline: str) -> None:
    model = CASES[case]()
    onnx.checker.check_model(model, full_check=True)
    if pipeline == "eliminate-noops":
        result = graphopt.optimize(model, make_pipeline("p", [pipeline]))
    else:
        result = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(result, full_check=True)
    assert "Slice" in [n.op_type for n in result.graph.node]
    if case == "loop-in-loop":
        loop = next(n for n in result.graph.node if n.op_type == "Loop")
        assert "Slice" in [n.op_type for n in loop.attribute[0].g.node]
    for level in (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    ):
        (want,) = _run(model, level)
        (got,) = _run(result, level)
        assert want.shape == got.shape == (1,)
        np.testing.assert_array_equal(got, want)
