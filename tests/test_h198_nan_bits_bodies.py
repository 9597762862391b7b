"""Float no-ops inside If/Loop bodies at opset 26+ (H198).

From opset 26 BitCast reads a float's bits, so x·1, x + (−0.0), ... are kept where a model
holds a BitCast (onnxruntime's arithmetic quiets a signalling NaN: 0x7f800001 → 0x7fc00001;
`noop.nan_bits_observable`). A body run as a model of its own cannot see the graph around it,
so every body of an opset 26+ model kept them, BitCast or none. The body's context is now
told whether the graphs around it hold one (`noop.NAN_BITS_AROUND`, from `graphopt.subgraphs`):
without a BitCast anywhere a body's x·1 goes; with one in the main graph, in another branch, in
another node's body, the body's own or the graph around a nested body's, it stays.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from tests.conftest import onnxruntime_loads_opset

pytestmark = pytest.mark.skipif(
    onnx.defs.onnx_opset_version() < 26 or not onnxruntime_loads_opset(26),
    reason="needs onnx and onnxruntime at opset 26 (BitCast)",
)

F32, I32, I64, BOOL = (
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT64,
    onnx.TensorProto.BOOL,
)
vi = oh.make_tensor_value_info
SIGNALLING = np.array([0x7F800001, 0x3F800000, 0x40000000, -0x7FFFFF], np.int32)


def _times_one(x: str, out: str) -> list[onnx.NodeProto]:
    """out = Relu(x · 1) (the Relu: a body output that is an outer value stays an Identity)."""
    one = numpy_helper.from_array(np.ones(1, np.float32))
    return [
        oh.make_node("Constant", [], [f"{out}_one"], value=one),
        oh.make_node("Mul", [x, f"{out}_one"], [f"{out}_m"]),
        oh.make_node("Relu", [f"{out}_m"], [out]),
    ]


def _branch(name: str, nodes: list[onnx.NodeProto]) -> onnx.GraphProto:
    return oh.make_graph(nodes, name, [], [vi(name, F32, [4])])


def _model(nodes, inputs, outputs) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = oh.make_graph(nodes, "g", inputs, outputs)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 26)], ir_version=11)


INPUTS = [vi("x", F32, [4]), vi("w", I32, [4]), vi("c", BOOL, [])]


def if_times_one(bitcast: str) -> onnx.ModelProto:
    """y = If(c) {Relu(x·1)} else {Neg(x)}, and a BitCast at `bitcast` (or none)."""
    then = _times_one("x", "t")
    other = [oh.make_node("Neg", ["x"], ["e"])]
    if bitcast == "else-branch":
        other = [oh.make_node("BitCast", ["w"], ["e"], to=F32)]
    if bitcast == "same-branch":
        then = [*_times_one("x", "t0"), oh.make_node("BitCast", ["t0"], ["t1"], to=I32)]
        then.append(oh.make_node("BitCast", ["t1"], ["t"], to=F32))
    nodes = [
        oh.make_node(
            "If", ["c"], ["y"], then_branch=_branch("t", then), else_branch=_branch("e", other)
        )
    ]
    outputs = [vi("y", F32, [4])]
    if bitcast == "main":  # the If's output read through a BitCast: its NaN's bits are values
        nodes.append(oh.make_node("BitCast", ["y"], ["bits"], to=I32))
        outputs.append(vi("bits", I32, [4]))
    if bitcast == "other-loop":  # a BitCast in another node's body
        body = oh.make_graph(
            [
                oh.make_node("Identity", ["cond_in"], ["cond_out"]),
                oh.make_node("BitCast", ["w"], ["wf"], to=F32),
            ],
            "body",
            [vi("i", I64, []), vi("cond_in", BOOL, [])],
            [vi("cond_out", BOOL, []), vi("wf", F32, [4])],
        )
        trips = numpy_helper.from_array(np.array(1, np.int64))
        nodes.insert(0, oh.make_node("Constant", [], ["trips"], value=trips))
        nodes.append(oh.make_node("Loop", ["trips", ""], ["scanned"], body=body))
        outputs.append(vi("scanned", F32, [1, 4]))
    return _model(nodes, INPUTS, outputs)


def loop_times_one(bitcast: bool) -> onnx.ModelProto:
    """scanned = Loop(1) {Relu(x·1)}, its result read through a BitCast where `bitcast`."""
    body = oh.make_graph(
        [oh.make_node("Identity", ["cond_in"], ["cond_out"]), *_times_one("x", "o")],
        "body",
        [vi("i", I64, []), vi("cond_in", BOOL, [])],
        [vi("cond_out", BOOL, []), vi("o", F32, [4])],
    )
    trips = numpy_helper.from_array(np.array(1, np.int64))
    nodes = [
        oh.make_node("Constant", [], ["trips"], value=trips),
        oh.make_node("Loop", ["trips", ""], ["y"], body=body),
    ]
    outputs = [vi("y", F32, [1, 4])]
    if bitcast:
        nodes.append(oh.make_node("BitCast", ["y"], ["bits"], to=I32))
        outputs.append(vi("bits", I32, [1, 4]))
    return _model(nodes, INPUTS, outputs)


def nested_if_times_one(bitcast: bool) -> onnx.ModelProto:
    """y = If(c) {If(c) {Relu(x·1)} else {Neg(x)}} else {Neg(x)}, its result read through a
    BitCast in the main graph where `bitcast` (two scopes away from the Mul)."""
    inner = oh.make_node(
        "If",
        ["c"],
        ["t"],
        then_branch=_branch("it", _times_one("x", "it")),
        else_branch=_branch("ie", [oh.make_node("Neg", ["x"], ["ie"])]),
    )
    outer = oh.make_node(
        "If",
        ["c"],
        ["y"],
        then_branch=_branch("t", [inner]),
        else_branch=_branch("e", [oh.make_node("Neg", ["x"], ["e"])]),
    )
    nodes, outputs = [outer], [vi("y", F32, [4])]
    if bitcast:
        nodes.append(oh.make_node("BitCast", ["y"], ["bits"], to=I32))
        outputs.append(vi("bits", I32, [4]))
    return _model(nodes, INPUTS, outputs)


def _ops_in_bodies(model: onnx.ModelProto) -> list[str]:
    found: list[str] = []

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    found.extend(n.op_type for n in attr.g.node)
                    walk(attr.g)

    walk(model.graph)
    return found


def _optimized_and_compared(model: onnx.ModelProto) -> onnx.ModelProto:
    onnx.checker.check_model(model, full_check=True)
    optimized = graphopt.optimize(model, "default")
    onnx.checker.check_model(optimized, full_check=True)
    feeds = {"x": SIGNALLING.view(np.float32), "w": SIGNALLING, "c": np.array(True)}
    for level in ("disable", "all"):
        want = ort_run(model, feeds, level=level)
        got = ort_run(optimized, feeds, level=level)
        assert list(got) == list(want)
        for name, value in want.items():
            assert got[name].dtype == value.dtype, name
            # the bits, where they are ints; NaN == NaN where floats (no BitCast reads them)
            np.testing.assert_array_equal(got[name], value, err_msg=f"{level}: {name}")
    return optimized


@pytest.mark.parametrize(
    "build",
    [
        lambda: if_times_one("none"),
        lambda: loop_times_one(False),
        lambda: nested_if_times_one(False),
    ],
    ids=["if", "loop", "nested-if"],
)
def test_a_body_float_noop_goes_where_no_bitcast_is(build) -> None:  # type: ignore[no-untyped-def]
    optimized = _optimized_and_compared(build())
    assert "Mul" not in _ops_in_bodies(optimized)


@pytest.mark.parametrize(
    "build",
    [
        lambda: if_times_one("main"),
        lambda: if_times_one("else-branch"),
        lambda: if_times_one("same-branch"),
        lambda: if_times_one("other-loop"),
        lambda: loop_times_one(True),
        lambda: nested_if_times_one(True),
    ],
    ids=["main", "else-branch", "same-branch", "other-loop", "loop", "nested-if"],
)
def test_a_body_float_noop_stays_where_a_bitcast_is_anywhere(build) -> None:  # type: ignore[no-untyped-def]
    optimized = _optimized_and_compared(build())
    assert "Mul" in _ops_in_bodies(optimized)
