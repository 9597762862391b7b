"""graphopt.analysis.fuse_ops: TVM FuseOps groups on hand-computed cases and on real detectors."""

from __future__ import annotations

import importlib

import networkx as nx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import post_dominator_tree
from graphopt.analysis.dominators import as_graph, successors
from graphopt.analysis.op_kinds import OpKind
from graphopt.analysis.shapes import shape_facts
from graphopt.ir import Graph, load_model

fo = importlib.import_module("graphopt.analysis.fuse_ops")  # the module, not the function


def _model(nodes, inits=(), out_shape=None, outputs=("y",), in_shape=(1, 3, 8, 8)):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, out_shape) for o in outputs],
        list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _init(name, shape, value=0.5):
    return numpy_helper.from_array(np.full(shape, value, np.float32), name)


def _conv(name, x, y, c_in=3, c_out=4):
    w = _init(f"{name}_W", (c_out, c_in, 3, 3))
    node = helper.make_node("Conv", [x, w.name], [y], name=name, pads=[1, 1, 1, 1])
    return node, w


def test_conv_bn_as_mul_add_then_relu_is_one_group():
    conv, w = _conv("conv", "x", "c")
    scale, shift = _init("s", (1, 4, 1, 1)), _init("b", (1, 4, 1, 1))
    nodes = [
        conv,
        helper.make_node("Mul", ["c", "s"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "b"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="relu"),
    ]
    assert fo.fuse_ops(_model(nodes, [w, scale, shift])) == [["conv", "mul", "add", "relu"]]
    groups = fo.fusion_groups(_model(nodes, [w, scale, shift]))
    assert groups[0].anchor == "conv"
    assert groups[0].pattern == OpKind.OUT_EWISE_FUSABLE


def test_conv_batchnormalization_relu_is_one_group():
    conv, w = _conv("conv", "x", "c")
    bn_inits = [_init(n, (4,), 1.0) for n in ("g", "beta", "mean", "var")]
    nodes = [
        conv,
        helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["b"], name="bn"),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    assert fo.fuse_ops(_model(nodes, [w, *bn_inits])) == [["conv", "bn", "relu"]]


def test_silu_diamond_fuses_into_the_conv():
    conv, w = _conv("conv", "x", "c")
    nodes = [
        conv,
        helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["c", "s"], ["y"], name="mul"),
    ]
    assert fo.fuse_ops(_model(nodes, [w])) == [["conv", "sigmoid", "mul"]]


def test_broadcast_edge_of_unknown_or_different_shape_blocks_phase_one():
    # Conv → Mul(c, z) where z is a bigger runtime tensor: the edge stays BROADCAST, so the Conv
    # cannot take the Mul as its epilogue (TVM needs an ELEMWISE relation).
    conv, w = _conv("conv", "x", "c", c_out=1)
    nodes = [
        conv,
        helper.make_node("Relu", ["x"], ["z"], name="relu"),
        helper.make_node("Mul", ["c", "z"], ["y"], name="mul"),
    ]
    groups = fo.fuse_ops(_model(nodes, [w]))
    assert ["conv"] in groups
    assert sorted(map(sorted, groups)) == [["conv"], ["mul", "relu"]]


def test_injective_path_to_the_post_dominator_keeps_the_conv_alone():
    # Conv → (Relu, Transpose → Transpose) → Add: ipdom(conv) = add, but one path is
    # INJECTIVE, so phase 1 refuses; the elementwise and injective branches join the Add.
    conv, w = _conv("conv", "x", "c", c_in=3, c_out=8)
    nodes = [
        conv,
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Transpose", ["c"], ["t1"], name="t1", perm=[0, 1, 3, 2]),
        helper.make_node("Transpose", ["t1"], ["t2"], name="t2", perm=[0, 1, 3, 2]),
        helper.make_node("Add", ["r", "t2"], ["y"], name="add"),
    ]
    assert fo.fuse_ops(_model(nodes, [w])) == [["conv"], ["relu", "t1", "t2", "add"]]


def test_concat_of_two_branches():
    # Branch A: Conv → Relu (anchored, stays on its own). Branch B: Sigmoid → Transpose
    # (injective) joins the Concat through the virtual tuple in phase 3.
    conv, w = _conv("conv", "x", "c", c_out=3)
    nodes = [
        conv,
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["x"], ["s"], name="sigmoid"),
        helper.make_node("Transpose", ["s"], ["t"], name="transpose", perm=[0, 1, 3, 2]),
        helper.make_node("Concat", ["r", "t"], ["y"], name="concat", axis=1),
    ]
    groups = fo.fuse_ops(_model(nodes, [w]))
    assert sorted(map(sorted, groups)) == [["concat", "sigmoid", "transpose"], ["conv", "relu"]]
    assert groups[-1] == ["sigmoid", "transpose", "concat"]


def test_group_size_cap_is_respected():
    nodes = []
    prev = "x"
    for i in range(10):
        out = "y" if i == 9 else f"r{i}"
        nodes.append(helper.make_node("Relu", [prev], [out], name=f"r{i}"))
        prev = out
    model = _model(nodes)
    assert fo.fuse_ops(model) == [[f"r{i}" for i in range(10)]]
    capped = fo.fuse_ops(model, max_group_size=4)
    assert capped == [
        ["r0", "r1", "r2", "r3"],
        ["r4", "r5", "r6", "r7"],
        ["r8", "r9"],
    ]
    with pytest.raises(ValueError, match="max_group_size"):
        fo.fuse_ops(model, max_group_size=0)


def test_graph_output_and_opaque_nodes_are_boundaries():
    conv, w = _conv("conv", "x", "c")
    k = helper.make_tensor("k", TensorProto.INT64, [1], [2])
    nodes = [
        conv,
        helper.make_node("Relu", ["c"], ["mid"], name="relu"),  # graph output: extern_ref
        helper.make_node("Sigmoid", ["mid"], ["s"], name="sigmoid"),
        helper.make_node("Constant", [], ["kk"], name="const", value=k),
        helper.make_node("TopK", ["s", "kk"], ["y", "idx"], name="topk", axis=1),
    ]
    model = _model(nodes, [w], outputs=("y", "mid"))
    groups = fo.fuse_ops(model)
    assert sorted(map(sorted, groups)) == [["const"], ["conv", "relu"], ["sigmoid"], ["topk"]]


def test_reduction_takes_an_elementwise_producer_but_nothing_after():
    nodes = [
        helper.make_node("Exp", ["x"], ["e"], name="exp"),
        helper.make_node("ReduceSum", ["e"], ["r"], name="sum", keepdims=1),
        helper.make_node("Relu", ["r"], ["y"], name="relu"),
    ]
    groups = fo.fuse_ops(_model(nodes))
    assert groups == [["exp", "sum"], ["relu"]]


def test_input_proto_is_not_mutated_and_nodes_without_names_are_named_like_the_ir():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Sigmoid", ["a"], ["y"]),
    ]
    model = _model(nodes)
    before = model.SerializeToString()
    assert fo.fuse_ops(model) == [["Relu_0", "Sigmoid_1"]]
    assert model.SerializeToString() == before


# ---------------------------------------------------------------------------- invariants


def _check_partition(graph: Graph, groups: list[list[str]], cap: int) -> None:
    flat = [n for g in groups for n in g]
    assert sorted(flat) == sorted(graph.nodes), "every node in exactly one group"
    assert all(1 <= len(g) <= cap for g in groups)
    position = {n.name: i for i, n in enumerate(graph.toposort())}
    group_of = {n: k for k, g in enumerate(groups) for n in g}
    quotient = nx.DiGraph()
    quotient.add_nodes_from(range(len(groups)))
    for k, g in enumerate(groups):
        assert [position[n] for n in g] == sorted(position[n] for n in g), "topological"
        inner = nx.Graph()
        inner.add_nodes_from(g)
        for n in g:
            for s in successors(graph, n):
                if group_of[s] == k:
                    inner.add_edge(n, s)
                else:
                    quotient.add_edge(k, group_of[s])
        assert nx.is_connected(inner), f"group {g} is not connected"
    # No path leaves a group and re-enters it ⇔ the group graph has no cycle; the groups'
    # order is a topological order of it.
    assert nx.is_directed_acyclic_graph(quotient)
    assert all(a < b for a, b in quotient.edges), "groups are not in topological order"


def test_random_models_partition_invariants():
    rng = np.random.default_rng(7)
    ops = ["Relu", "Sigmoid", "Add", "Mul", "Conv", "Transpose", "Concat", "ReduceMean", "TopK"]
    for trial in range(40):
        nodes, inits, tensors = [], [], ["x"]
        for i in range(int(rng.integers(2, 30))):
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
            elif op == "TopK":
                k = numpy_helper.from_array(np.array([1], np.int64), f"k{i}")
                inits.append(k)
                node = helper.make_node(op, [a, k.name], [out, f"{out}_i"], name=f"n{i}", axis=1)
            else:
                node = helper.make_node(op, [a], [out], name=f"n{i}")
            nodes.append(node)
            tensors.append(out)
        outputs = [tensors[-1]] + [t for t in tensors[1:-1] if rng.random() < 0.15]
        model = _model(nodes, inits, outputs=tuple(outputs), in_shape=(3, 3, 3, 3))
        cap = int(rng.integers(2, 6)) if trial % 2 else 256
        _check_partition(as_graph(model), fo.fuse_ops(model, max_group_size=cap), cap)


def _tree_matches(model) -> None:
    """The partitioner's own post-dominator tree equals `post_dominator_tree` (virtual tuples
    stand for their Concat)."""
    graph = as_graph(model)
    vertices = fo._indexed_graph(graph, shape_facts(graph))
    tree = fo._post_dominators(vertices)

    def real(i):
        while i is not None and not vertices[i].name:
            i = vertices[i].outputs[0][0]
        return None if i is None else vertices[i].name

    mine = {v.name: real(t.parent) for v, t in zip(vertices, tree, strict=True) if v.name}
    assert mine == post_dominator_tree(graph)


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["layout_cdla", "common_det"])
def test_real_models_partition(real_model, name):
    graph = Graph(load_model(real_model(name)))
    groups = fo.fusion_groups(graph)
    _check_partition(graph, [g.nodes for g in groups], fo.MAX_GROUP_SIZE)
    _tree_matches(graph)
    ops = {tuple(graph.nodes[n].op_type for n in g.nodes) for g in groups}
    if name == "layout_cdla":  # Conv + BN + decomposed hardswish x·clip(x+3, 0, 6)/6
        assert ("Conv", "BatchNormalization", "Add", "Clip", "Mul", "Div") in ops
    else:  # YOLOX: Conv + SiLU
        assert ("Conv", "Sigmoid", "Mul") in ops
    anchored = [g for g in groups if g.anchor is not None]
    assert all(
        graph.nodes[g.anchor].op_type in ("Conv", "MaxPool", "GlobalAveragePool") for g in anchored
    )
    convs = sum(1 for n in graph.nodes.values() if n.op_type == "Conv")
    fused_convs = sum(
        1 for g in groups if len(g.nodes) > 1 and graph.nodes[g.nodes[0]].op_type == "Conv"
    )
    assert fused_convs >= 0.9 * convs


def test_multi_output_split_and_output_order_on_small_model():
    nodes = [
        helper.make_node("Split", ["x"], ["a", "b"], name="split", axis=1, num_outputs=2),
        helper.make_node("Relu", ["a"], ["ra"], name="ra"),
        helper.make_node("Relu", ["b"], ["rb"], name="rb"),
        helper.make_node("Add", ["ra", "rb"], ["y"], name="add"),
    ]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    onnx.checker.check_model(model)
    assert fo.fuse_ops(model) == [["split", "ra", "rb", "add"]]
    _tree_matches(model)
