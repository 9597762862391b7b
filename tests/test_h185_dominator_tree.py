"""H185: `dominator_tree` by Lengauer–Tarjan (`dominators.immediate_dominators`), not networkx's
Cooper–Harvey–Kennedy iteration, which was quadratic where one node (a Sum) reads every node of
a long chain: the same trees as networkx on random DAGs and graphs, constant nodes, the real
detectors; work linear in the chain's length; no recursion limit at 100k nodes."""

from __future__ import annotations

import random
import sys

import networkx as nx
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.analysis import dominator_tree
from graphopt.analysis import dominators as dom
from graphopt.analysis.usedef import predecessors
from graphopt.ir import Graph
from graphopt.realmodels import fetch_model
from tests.test_dominators import Spec, _model, _random_dag


def _networkx_tree(model: onnx.ModelProto | Graph) -> dict[str, str | None]:
    """The tree as dominator_tree made it before (networkx from the same virtual entry)."""
    graph = model if isinstance(model, Graph) else Graph(model)
    constants = dom.constant_nodes(graph)
    inputs = set(graph.graph_inputs)
    fwd = nx.DiGraph()
    fwd.add_node("\0entry")
    fwd.add_nodes_from(graph.nodes)
    for name in graph.nodes:
        preds = predecessors(graph, name)
        if name not in constants:
            preds = [p for p in preds if p not in constants]
        fwd.add_edges_from((p, name) for p in preds)
        if not preds or any(t in inputs for t in graph.node_inputs(graph.nodes[name])):
            fwd.add_edge("\0entry", name)
    idom = nx.immediate_dominators(fwd, "\0entry")
    return {u: None if idom.get(u, "\0entry") == "\0entry" else idom[u] for u in graph.nodes}


def _spec_tree(spec: Spec, inputs: set[str]) -> dict[str, str | None]:
    """networkx's tree built from the spec alone (test-domain ops: nothing is constant)."""
    writer = {t: name for name, _, outs in spec for t in outs}
    fwd = nx.DiGraph()
    fwd.add_node("\0entry")
    for name, ins, _ in spec:
        fwd.add_node(name)
        preds = [writer[t] for t in ins if t in writer]
        fwd.add_edges_from((p, name) for p in preds)
        if not preds or any(t in inputs for t in ins):
            fwd.add_edge("\0entry", name)
    idom = nx.immediate_dominators(fwd, "\0entry")
    return {n: None if idom.get(n, "\0entry") == "\0entry" else idom[n] for n, _, _ in spec}


def test_random_dags_same_tree_as_networkx():
    rng = random.Random(185)
    nested = 0
    for _ in range(400):
        spec, outputs = _random_dag(rng)
        m = _model(spec, outputs)
        tree = dominator_tree(m)
        assert tree == _spec_tree(spec, {"x"}) == _networkx_tree(m)
        nested += any(v is not None and tree[v] is not None for v in tree.values())
    assert nested > 50  # trees deeper than one level under the entry, not only fans


def _wide_dag(rng: random.Random) -> tuple[Spec, list[str], tuple[str, ...]]:
    """Bigger DAGs: several graph inputs, multi-output nodes, wide readers (a Sum of many),
    dead nodes, nodes feeding several graph outputs."""
    inputs = tuple(f"x{i}" for i in range(rng.randint(1, 3)))
    tensors = list(inputs)
    spec: Spec = []
    for i in range(rng.randint(5, 60)):
        if rng.random() < 0.1:  # a reader of many earlier tensors
            ins = rng.sample(tensors, min(len(tensors), rng.randint(3, 12)))
        else:
            pool = tensors[-8:] if rng.random() < 0.8 else tensors
            ins = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
        outs = [f"t{i}_{j}" for j in range(rng.choice((1, 1, 2, 3)))]
        spec.append((f"n{i}", ins, outs))
        tensors.extend(outs)
    produced = [t for _, _, o in spec for t in o]
    outputs = [produced[-1]] + [t for t in produced[:-1] if rng.random() < 0.15]
    return spec, outputs, inputs


def test_wide_random_dags_same_tree_as_networkx():
    rng = random.Random(1850)
    for _ in range(200):
        spec, outputs, inputs = _wide_dag(rng)
        m = _model(spec, outputs, inputs)
        assert dominator_tree(m) == _spec_tree(spec, set(inputs))


def test_constant_nodes_same_tree_as_networkx():
    # default-domain ops over Constant nodes and weights: the edges from constant nodes drop
    rng = random.Random(18501)
    for _ in range(60):
        nodes, tensors = [], ["x"]
        inits = [helper.make_tensor("w", TensorProto.FLOAT, [1], [2.0])]
        for i in range(rng.randint(3, 30)):
            kind = rng.random()
            if kind < 0.2:
                nodes.append(
                    helper.make_node(
                        "Constant",
                        [],
                        [f"c{i}"],
                        name=f"k{i}",
                        value=helper.make_tensor(f"v{i}", TensorProto.FLOAT, [1], [1.0]),
                    )
                )
                tensors.append(f"c{i}")
                continue
            a, b = rng.choice(tensors[-5:]), rng.choice([*tensors, "w"])
            op = "Add" if kind < 0.6 else "Mul"
            nodes.append(helper.make_node(op, [a, b], [f"t{i}"], name=f"n{i}"))
            tensors.append(f"t{i}")
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info(tensors[-1], TensorProto.FLOAT, [1])],
            inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        assert dominator_tree(m) == _networkx_tree(m)


def test_immediate_dominators_of_random_graphs_with_cycles_and_unreached_vertices():
    # the algorithm itself holds for any flow graph, not only the DAGs a model makes
    rng = random.Random(18502)
    for _ in range(300):
        n = rng.randint(1, 40)
        succ = [[w for w in range(n) if rng.random() < 2.5 / n] for _ in range(n)]
        idom = dom.immediate_dominators(succ, 0)
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_edges_from((v, w) for v in range(n) for w in succ[v])
        expected = nx.immediate_dominators(g, 0)
        assert idom == [expected.get(v, -1) if v else -1 for v in range(n)]
        assert idom[0] == -1


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "layout_cdla", "ppocr_det"])
def test_real_detectors_same_tree_as_networkx(name):
    graph = Graph(onnx.load(str(fetch_model(name))))
    tree = dominator_tree(graph)
    assert tree == _networkx_tree(graph)
    assert len(tree) == len(graph.nodes) and sum(v is not None for v in tree.values()) > 100


def _chain_sum(n: int, total: bool = True) -> onnx.ModelProto:
    """x → n0 → n1 → ... → n{n-1}, and (`total`) one Sum reading every node's output."""
    nodes, cur = [], "x"
    for i in range(n):
        nodes.append(helper.make_node("Relu" if i % 2 else "Neg", [cur], [f"t{i}"], name=f"n{i}"))
        cur = f"t{i}"
    if total:
        nodes.append(helper.make_node("Sum", [f"t{i}" for i in range(n)], ["y"], name="sum"))
    graph = helper.make_graph(
        nodes,
        "chain_sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y" if total else cur, TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _lines_run(graph: Graph) -> int:
    """Lines executed in the dominator code (graphopt's and networkx's) for one tree."""
    files = (dom.__file__, nx.algorithms.dominance.__file__)
    count = 0

    def local(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        count += event == "line"
        return local

    def call(frame, event, arg):  # type: ignore[no-untyped-def]
        return local if frame.f_code.co_filename in files else None

    sys.settrace(call)
    try:
        dominator_tree(graph)
    finally:
        sys.settrace(None)
    return count


def test_chain_read_by_one_sum_takes_work_linear_in_its_length():
    # networkx walked up the chain once per Sum input: ~n²/2 steps (4000 nodes: 7.9M lines)
    small, big = Graph(_chain_sum(2000)), Graph(_chain_sum(4000))
    a, b = _lines_run(small), _lines_run(big)
    assert b < 2.3 * a  # twice the nodes, about twice the work (quadratic: 4×)
    assert b < 150 * 4000  # (97 lines a node measured)


def test_40k_chain_read_by_one_sum():
    n = 40_000
    tree = dominator_tree(_chain_sum(n))
    assert tree["sum"] == "n0" and tree["n0"] is None
    assert all(tree[f"n{i}"] == f"n{i - 1}" for i in range(1, n))


def test_100k_chain_no_recursion_limit():
    n = 100_000
    assert n > sys.getrecursionlimit() * 10
    tree = dominator_tree(_chain_sum(n, total=False))
    assert tree["n0"] is None and tree[f"n{n - 1}"] == f"n{n - 2}"
    assert dom.tree_depths(tree)[f"n{n - 1}"] == n
