"""FuseOps ignores dead nodes (review 12): a node no graph output depends on is a singleton
group and splits no group, as TVM, which never sees dead code, would partition the live graph.
`post_dominator_tree` keeps dead nodes (its public result is unchanged)."""

from __future__ import annotations

import importlib

import numpy as np
import onnx
import pytest
from onnx import helper

from graphopt.analysis import post_dominator_tree
from graphopt.analysis.dominators import as_graph
from graphopt.ir import Graph, load_model
from tests.test_fuse_ops import _check_partition, _conv, _init, _model

fo = importlib.import_module("graphopt.analysis.fuse_ops")  # the module, not the function


def _groups(model) -> set[frozenset[str]]:
    return {frozenset(g) for g in fo.fuse_ops(model)}


def _with_dead_readers(model: onnx.ModelProto, tensors: list[str]) -> onnx.ModelProto:
    """A copy of `model` with a dead Relu reading each of `tensors` (named dead_<k>)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for k, t in enumerate(tensors):
        out.graph.node.append(helper.make_node("Relu", [t], [f"dead_{k}_out"], name=f"dead_{k}"))
    return out


def _conv_bias_relu(*extra: onnx.NodeProto) -> onnx.ModelProto:
    conv, w = _conv("conv", "x", "c")
    nodes = [
        conv,
        helper.make_node("Add", ["c", "b"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="relu"),
        *extra,
    ]
    return _model(nodes, [w, _init("b", (1, 4, 8, 8))])


def test_a_dead_reader_of_the_conv_output_does_not_split_its_group():
    live = {frozenset({"conv", "add", "relu"})}
    assert _groups(_conv_bias_relu()) == live
    dead = helper.make_node("Sigmoid", ["c"], ["s"], name="dead_sigmoid")
    assert _groups(_conv_bias_relu(dead)) == live | {frozenset({"dead_sigmoid"})}


def test_a_dead_chain_in_the_middle_of_an_epilogue_stays_apart():
    # a dead Transpose -> Exp chain and a dead Concat read the Add in the middle of the group
    dead = [
        helper.make_node("Transpose", ["a"], ["t"], name="dead_t", perm=[0, 1, 3, 2]),
        helper.make_node("Exp", ["t"], ["e"], name="dead_exp"),
        helper.make_node("Concat", ["a", "c"], ["cat"], name="dead_cat", axis=1),
    ]
    groups = _groups(_conv_bias_relu(*dead))
    assert frozenset({"conv", "add", "relu"}) in groups
    assert {frozenset({n}) for n in ("dead_t", "dead_exp", "dead_cat")} <= groups
    model = _conv_bias_relu(*dead)
    _check_partition(as_graph(model), fo.fuse_ops(model), fo.MAX_GROUP_SIZE)


def test_the_post_dominator_tree_still_keeps_dead_nodes():
    dead = helper.make_node("Sigmoid", ["c"], ["s"], name="dead_sigmoid")
    tree = post_dominator_tree(_conv_bias_relu(dead))
    assert tree["conv"] is None  # its paths reach the exit through relu and the dead node
    assert tree["dead_sigmoid"] is None and tree["add"] == "relu"


def _random_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, list[str]]:
    """A random model as test_fuse_ops builds them (every tensor feeds the output chain or is
    an output), and its tensors."""
    ops = ["Relu", "Sigmoid", "Add", "Mul", "Conv", "Transpose", "Concat", "ReduceMean"]
    nodes, inits, tensors = [], [], ["x"]
    for i in range(int(rng.integers(3, 25))):
        op = ops[int(rng.integers(len(ops)))]
        a = tensors[-1 - int(rng.integers(min(4, len(tensors))))]
        b = tensors[-1 - int(rng.integers(min(4, len(tensors))))]
        out = f"t{i}"
        if op == "Conv":
            node, w = _conv(f"n{i}", a, out, c_in=3, c_out=3)
            inits.append(w)
        elif op in ("Add", "Mul"):
            node = helper.make_node(op, [a, b], [out], name=f"n{i}")
        elif op == "Concat":
            node = helper.make_node(op, [a, b], [out], name=f"n{i}", axis=0)
        elif op == "Transpose":
            node = helper.make_node(op, [a], [out], name=f"n{i}", perm=[0, 1, 3, 2])
        elif op == "ReduceMean":
            node = helper.make_node(op, [a], [out], name=f"n{i}", axes=[1], keepdims=1)
        else:
            node = helper.make_node(op, [a], [out], name=f"n{i}")
        nodes.append(node)
        tensors.append(out)
    read = {t for n in nodes for t in n.input}
    outputs = [t for t in tensors[1:] if t not in read or rng.random() < 0.1]
    return _model(nodes, inits, outputs=tuple(outputs), in_shape=(3, 3, 3, 3)), tensors


def test_dead_readers_leave_the_live_partition_of_random_models_as_it_was():
    rng = np.random.default_rng(12)
    for _ in range(40):
        model, tensors = _random_model(rng)
        picked = [t for t in tensors if rng.random() < 0.4]
        dead = _with_dead_readers(model, picked)
        expected = _groups(model) | {frozenset({f"dead_{k}"}) for k in range(len(picked))}
        assert _groups(dead) == expected
        _check_partition(as_graph(dead), fo.fuse_ops(dead), fo.MAX_GROUP_SIZE)


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["layout_cdla", "ppocr_det", "common_det"])
def test_real_detectors_partition_is_valid_and_ignores_dead_readers(real_model, name):
    model = load_model(real_model(name))
    graph = Graph(model)
    groups = fo.fuse_ops(graph)
    _check_partition(graph, groups, fo.MAX_GROUP_SIZE)
    # a dead Relu on the output of every Conv: each Conv still fuses with what it fused with
    convs = [n.output[0] for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) > 20
    dead = _with_dead_readers(load_model(real_model(name)), convs)
    dead_groups = fo.fuse_ops(dead)
    _check_partition(Graph(dead), dead_groups, fo.MAX_GROUP_SIZE)
    singles = {frozenset({f"dead_{k}"}) for k in range(len(convs))}
    assert {frozenset(g) for g in dead_groups} == {frozenset(g) for g in groups} | singles
