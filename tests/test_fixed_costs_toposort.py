"""`Graph.toposort` and `commit`'s initializer clean-up read the index with fewer wrappers and
lists (the producers of a node from its wiring directly; the initializer list read once) and
give exactly what they gave: the same node order as the depth-first walk over
`_distinct_reads` below (duplicate and omitted inputs, If bodies' outer reads), on shuffled
random graphs; the same initializers kept, in order."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir import Graph


def _reference_order(graph: Graph) -> list[str]:
    """The order `Graph._toposort` gave before (its code, with `_distinct_reads` per node)."""
    current = list(graph.nodes.values())
    if graph._in_order(current):
        return [n.name for n in current]

    def producers_of(node_name: str) -> list[str]:
        deps = []
        for name in graph._distinct_reads(node_name, graph._wiring[node_name][0]):
            p = graph.producer.get(name)
            if p is not None and p != node_name:
                deps.append(p)
        return deps

    order: list[str] = []
    state: dict[str, int] = {}
    for root in graph.nodes:
        if state.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(producers_of(root)))]
        state[root] = 1
        while stack:
            name, pending = stack[-1]
            for dep in pending:
                if state.get(dep) == 2:
                    continue
                state[dep] = 1
                stack.append((dep, iter(producers_of(dep))))
                break
            else:
                stack.pop()
                state[name] = 2
                order.append(name)
    return order


def _random_model(rng: random.Random, size: int) -> onnx.ModelProto:
    """`size` nodes in shuffled order: Add/Sum/Identity of earlier tensors (repeats, omitted
    optional inputs) and If nodes whose branches read earlier tensors from the outer scope."""
    tensors = ["x"]
    nodes = []
    for i in range(size):
        out = f"t{i}"
        pick = [rng.choice(tensors) for _ in range(rng.randint(1, 3))]
        kind = rng.random()
        if kind < 0.15:
            branch = helper.make_graph(
                [helper.make_node("Add", [rng.choice(tensors), rng.choice(tensors)], ["b"])],
                f"branch{i}",
                [],
                [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
            )
            nodes.append(
                helper.make_node(
                    "If", ["c"], [out], name=f"n{i}", then_branch=branch, else_branch=branch
                )
            )
        elif kind < 0.3:
            nodes.append(helper.make_node("Clip", [pick[0], "", "lo"], [out], name=f"n{i}"))
        else:
            nodes.append(helper.make_node("Sum", pick, [out], name=f"n{i}"))
        tensors.append(out)
    rng.shuffle(nodes)
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info(tensors[-1], TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.zeros(2, np.float32), "lo")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_toposort_gives_the_depth_first_order_it_gave():
    rng = random.Random(7)
    for trial in range(60):
        graph = Graph(_random_model(rng, rng.randint(2, 40)))
        order = [n.name for n in graph.toposort()]
        assert order == _reference_order(graph), trial
        assert sorted(order) == sorted(graph.nodes)


def test_commit_keeps_the_initializers_still_named_in_order():
    inits = [numpy_helper.from_array(np.full(2, i, np.float32), f"w{i}") for i in range(9)]
    nodes = [helper.make_node("Add", ["x", f"w{i}"], [f"y{i}"]) for i in range(9)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [2]) for i in range(9)],
        inits,
    )
    g = Graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    for i in (0, 3, 4, 8):
        g.replace_all_uses(f"w{i}", "w1")
        g.remove_initializer(f"w{i}")
    out = g.commit(reindex=False)
    assert [t.name for t in out.graph.initializer] == ["w1", "w2", "w5", "w6", "w7"]
    assert [float(numpy_helper.to_array(t)[0]) for t in out.graph.initializer] == [1, 2, 5, 6, 7]
