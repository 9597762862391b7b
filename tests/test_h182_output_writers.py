"""H182: the post-dominator tree of a model whose nodes all write graph outputs is found with
the set of output names made once, not once per node (a 20k-node such model took 30 s in
`exit_edges`, 40k nodes 2 min: quadratic), and its answer is the same; and on an 80k-node
chain neither method meets Python's recursion limit."""

from __future__ import annotations

import sys

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.analysis import post_dominator_tree
from graphopt.analysis.dominators import tree_depths
from graphopt.analysis.usedef import exit_edges, output_writers, writes_graph_output
from graphopt.ir import Graph


def _chain(n: int, every_output: bool) -> onnx.ModelProto:
    """x → n0 → n1 → ... (Relu/Neg); `every_output`: each node's output is a graph output."""
    nodes, outs, cur = [], [], "x"
    for i in range(n):
        nodes.append(helper.make_node("Relu" if i % 2 else "Neg", [cur], [f"t{i}"], name=f"n{i}"))
        if every_output or i == n - 1:
            outs.append(helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, [1, 4]))
        cur = f"t{i}"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(nodes, "chain", [x], outs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class _CountingList(list):  # type: ignore[type-arg]
    """A list that counts how often it is walked."""

    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        _CountingList.walks += 1
        return super().__iter__()


def test_graph_outputs_walked_once_not_per_node() -> None:
    graph = Graph(_chain(3000, every_output=True))
    graph.graph_outputs = _CountingList(graph.graph_outputs)
    _CountingList.walks = 0
    succ, to_exit = exit_edges(graph)
    assert _CountingList.walks <= 2  # (it was one walk per node: 3000)
    assert to_exit == set(graph.nodes)  # every node writes a graph output
    assert succ["n0"] == ["n1"] and succ["n2999"] == []


def test_output_writers_agrees_with_writes_graph_output() -> None:
    model = _chain(50, every_output=False)
    model.graph.output.append(helper.make_tensor_value_info("t7", TensorProto.FLOAT, [1, 4]))
    model.graph.output.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]))
    graph = Graph(model)
    assert output_writers(graph) == {"n7", "n49"}
    assert output_writers(graph) == {n for n in graph.nodes if writes_graph_output(graph, n)}


def test_tree_of_every_output_model() -> None:
    model = _chain(2000, every_output=True)
    for method in ("networkx", "lca"):
        tree = post_dominator_tree(model, method=method)  # type: ignore[arg-type]
        assert len(tree) == 2000 and set(tree.values()) == {None}  # each writes an output


@pytest.mark.slow
def test_80k_chain_no_recursion_limit() -> None:
    n = 80_000
    assert n > sys.getrecursionlimit() * 10
    model = _chain(n, every_output=False)
    for method in ("networkx", "lca"):
        tree = post_dominator_tree(model, method=method)  # type: ignore[arg-type]
        assert tree["n0"] == "n1" and tree[f"n{n - 2}"] == f"n{n - 1}"
        assert tree[f"n{n - 1}"] is None
        depths = tree_depths(tree)
        assert depths["n0"] == n and depths[f"n{n - 1}"] == 1
