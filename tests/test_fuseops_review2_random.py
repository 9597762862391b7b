"""Adversarial review: random models through the FuseOps partition and its materialization.

Each random model mixes every kind (elementwise, broadcast against a constant or an initializer,
injective, Concat through a virtual tuple, multi-output Split, reductions, Conv/MaxPool/Softmax,
opaque TopK and an If whose branches read an outer tensor), graph outputs in the middle, dead
nodes and a size cap. Checked: the groups are convex (no path leaves a group and re-enters it)
and in topological order, the partitioner's own post-dominator tree is `post_dominator_tree`'s
(both methods), and the materialized model passes onnx.checker's full check, gives onnxruntime's
outputs (fp32 tolerances) and is left as it is by a second materialization.
"""

from __future__ import annotations

import importlib
import random

import networkx as nx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import fusion_groups, post_dominator_tree
from graphopt.analysis.dominators import successors
from graphopt.analysis.shapes import shape_facts
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.ir import Graph, load_model
from graphopt.passes import fusion_functions
from graphopt.passes.base import PassContext
from graphopt.passes.fusion_functions import FUSED_DOMAIN, MaterializeFusionGroups

fo = importlib.import_module("graphopt.analysis.fuse_ops")

SHAPE = [1, 4, 5, 5]
OPS = [
    "Relu",
    "Sigmoid",
    "Add",
    "Mul",
    "MulInit",
    "AddConstant",
    "Transpose",
    "ConcatSlice",
    "SplitConcat",
    "Conv",
    "MaxPool",
    "Softmax",
    "ReduceAdd",
    "TopK",
    "If",
    "ReshapeTwice",
    "Gather",
]


def _ints(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _random_model(rng: random.Random) -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = [numpy_helper.from_array(np.array(0, np.float32), "zero")]
    tensors = ["x"]

    def pick() -> str:
        return rng.choice(tensors[-5:] if rng.random() < 0.7 else tensors)

    def node(op: str, ins: list[str], outs: list[str], name: str, **attrs: object) -> None:
        nodes.append(helper.make_node(op, ins, outs, name=name, **attrs))

    for i in range(rng.randint(3, 18)):
        op, a, b, o, n = rng.choice(OPS), pick(), pick(), f"t{i}", f"n{i}"
        if op in ("Relu", "Sigmoid"):
            node(op, [a], [o], n)
        elif op in ("Add", "Mul"):
            node(op, [a, b], [o], n)
        elif op == "MulInit":
            w = numpy_helper.from_array(np.full((1, 4, 1, 1), 0.5, np.float32), f"w{i}")
            inits.append(w)
            node("Mul", [a, w.name], [o], n)
        elif op == "AddConstant":
            value = numpy_helper.from_array(np.full((1, 4, 1, 1), 0.25, np.float32))
            node("Constant", [], [f"k{i}"], f"{n}k", value=value)
            node("Add", [a, f"k{i}"], [o], n)
        elif op == "Transpose":
            node(op, [a], [o], n, perm=[0, 1, 3, 2])
        elif op == "ConcatSlice":
            inits += [_ints(f"s{i}", [2]), _ints(f"e{i}", [6]), _ints(f"x{i}", [1])]
            node("Concat", [a, b], [f"{o}c"], f"{n}c", axis=1)
            node("Slice", [f"{o}c", f"s{i}", f"e{i}", f"x{i}"], [o], n)
        elif op == "SplitConcat":
            node("Split", [a], [f"{o}p", f"{o}q"], f"{n}s", axis=1, num_outputs=2)
            node("Relu", [f"{o}q"], [f"{o}r"], f"{n}r")
            node("Concat", [f"{o}r", f"{o}p"], [o], n, axis=1)
        elif op == "Conv":
            w = numpy_helper.from_array(
                np.linspace(-0.5, 0.5, 16, dtype=np.float32).reshape(4, 4, 1, 1), f"w{i}"
            )
            inits.append(w)
            node("Conv", [a, w.name], [o], n)
        elif op == "MaxPool":
            node(op, [a], [o], n, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        elif op == "Softmax":
            node(op, [a], [o], n, axis=1)
        elif op == "ReduceAdd":
            inits.append(_ints(f"ax{i}", [1]))
            node("ReduceMean", [a, f"ax{i}"], [f"{o}m"], f"{n}m", keepdims=1)
            node("Add", [b, f"{o}m"], [o], n)
        elif op == "TopK":
            inits.append(_ints(f"k{i}", [4]))
            node("TopK", [a, f"k{i}"], [o, f"{o}i"], n, axis=1)
        elif op == "If":
            node("ReduceSum", [a], [f"{o}s"], f"{n}s", keepdims=0)
            node("Greater", [f"{o}s", "zero"], [f"{o}g"], f"{n}g")
            out = helper.make_tensor_value_info(f"{o}b", TensorProto.FLOAT, SHAPE)
            then = helper.make_graph([helper.make_node("Relu", [b], [f"{o}b"])], "t", [], [out])
            other = helper.make_graph([helper.make_node("Neg", [b], [f"{o}b"])], "e", [], [out])
            node("If", [f"{o}g"], [o], n, then_branch=then, else_branch=other)
        elif op == "ReshapeTwice":
            inits += [_ints(f"f{i}", [1, 4, 25]), _ints(f"b{i}", SHAPE)]
            node("Reshape", [a, f"f{i}"], [f"{o}f"], f"{n}f")
            node("Sigmoid", [f"{o}f"], [f"{o}g"], f"{n}g")
            node("Reshape", [f"{o}g", f"b{i}"], [o], n)
        else:  # Gather: a channel permutation
            inits.append(_ints(f"i{i}", [3, 2, 1, 0]))
            node("Gather", [a, f"i{i}"], [o], n, axis=1)
        tensors.append(o)
    outputs = [tensors[-1]] + [t for t in tensors[1:-1] if rng.random() < 0.15]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, SHAPE) for t in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def _assert_convex_and_ordered(graph: Graph, groups: list[list[str]], cap: int) -> None:
    assert sorted(n for g in groups for n in g) == sorted(graph.nodes)
    assert all(1 <= len(g) <= cap for g in groups)
    group_of = {n: k for k, g in enumerate(groups) for n in g}
    quotient = nx.DiGraph()
    quotient.add_nodes_from(range(len(groups)))
    for k, g in enumerate(groups):
        for n in g:
            quotient.add_edges_from((k, group_of[s]) for s in successors(graph, n) if s not in g)
    assert nx.is_directed_acyclic_graph(quotient), "a path leaves a group and re-enters it"
    assert all(a < b for a, b in quotient.edges), "groups are not in topological order"


def _assert_tree_is_post_dominator_tree(graph: Graph) -> None:
    vertices = fo._indexed_graph(graph, shape_facts(graph))
    tree = fo._post_dominators(vertices)

    def real(i: int | None) -> str | None:
        while i is not None and not vertices[i].name:  # a virtual tuple stands for its Concat
            i = vertices[i].outputs[0][0]
        return None if i is None else vertices[i].name

    mine = {v.name: real(t.parent) for v, t in zip(vertices, tree, strict=True) if v.name}
    assert mine == post_dominator_tree(graph) == post_dominator_tree(graph, method="lca")


def _materialize(model: onnx.ModelProto, cap: int) -> tuple[onnx.ModelProto, bool]:
    graph = Graph(load_model(model))
    changed = MaterializeFusionGroups(max_group_size=cap).run(graph, PassContext()).changed
    return graph.commit(), changed


def test_random_models_partition_and_materialize():
    feeds = {"x": np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32)}
    fused = 0
    for seed in range(36):
        rng = random.Random(seed)
        model = _random_model(rng)
        cap = rng.choice([256, 256, 2, 3])
        graph = Graph(load_model(model))
        groups = fusion_groups(graph, cap)
        _assert_convex_and_ordered(graph, [g.nodes for g in groups], cap)
        _assert_tree_is_post_dominator_tree(graph)
        expected = ort_run(model, feeds)
        out, changed = _materialize(model, cap)
        # a group of more than one node becomes a function unless it is dead (nothing outside
        # reads what it computes)
        live = [g for g in groups if len(g.nodes) > 1 and fusion_functions._boundary(graph, g)[1]]
        assert changed == bool(live)
        assert len(out.functions) == len(live)
        fused += len(out.functions)
        onnx.checker.check_model(out, full_check=True)
        assert all(f.domain == FUSED_DOMAIN for f in out.functions)
        got = ort_run(out, feeds)
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_allclose(
                got[name], value, rtol=1e-4, atol=1e-5, err_msg=f"seed {seed}: {name}"
            )
        again, changed_again = _materialize(out, cap)
        assert not changed_again, f"seed {seed}: a second materialization changed the model"
        assert len(again.functions) == len(out.functions)
    assert fused > 60  # the generator makes real groups, not only singletons
