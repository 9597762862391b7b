"""H191: `post_dominator_tree` by Lengauer–Tarjan (method "lengauer-tarjan", the new default)
on the reversed graph from the virtual exit. "networkx" and "lca" stay as they were and are the
cross-checks: all three give the same tree on random DAGs, on "combs" (n teeth, each read by
both the first and the last node of an n-node chain, where both older methods are quadratic),
on the three real detectors and the zoo; the default's work is linear in the comb's size."""

from __future__ import annotations

import random
import sys

import networkx as nx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import dominators as dom
from graphopt.analysis import post_dominator_tree
from graphopt.errors import OptionError
from graphopt.ir import Graph
from graphopt.realmodels import MODELS, ZOO, fetch_model
from tests.test_dominators import _brute_ipdom, _model, _random_dag
from tests.test_h185_dominator_tree import _wide_dag

SHAPE = [1, 4, 8, 8]


def _value(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, SHAPE)


def _finish(
    nodes: list[onnx.NodeProto], outputs: list[str], inits: list[onnx.TensorProto] | None = None
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "comb", [_value("x")], [_value(o) for o in outputs], inits or []
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def comb_nodes(n: int, x: str = "x", prefix: str = "") -> tuple[list[onnx.NodeProto], str]:
    """Teeth c0..c{n-1} (Neg of `x`), each read by both h0 = Sum(teeth) and the chain's last node
    h{n-1} = Sum(h{n-2}, teeth); h1..h{n-2} is a Relu/Sigmoid chain. Returns the nodes and the
    last node's output."""
    p = prefix
    teeth = [f"{p}c{i}" for i in range(n)]
    nodes = [helper.make_node("Neg", [x], [t], name=t) for t in teeth]
    nodes.append(helper.make_node("Sum", teeth, [f"{p}h0"], name=f"{p}h0"))
    for i in range(1, n - 1):
        op = "Relu" if i % 2 else "Sigmoid"
        nodes.append(helper.make_node(op, [f"{p}h{i - 1}"], [f"{p}h{i}"], name=f"{p}h{i}"))
    last = f"{p}h{n - 1}"
    nodes.append(helper.make_node("Sum", [f"{p}h{n - 2}", *teeth], [last], name=last))
    return nodes, last


def comb(n: int) -> onnx.ModelProto:
    nodes, last = comb_nodes(n)
    return _finish(nodes, [last])


def combs(k: int, n: int) -> onnx.ModelProto:
    """k combs one after the other (comb j's teeth read comb j-1's end)."""
    nodes, cur = [], "x"
    for j in range(k):
        more, cur = comb_nodes(n, cur, f"k{j}_")
        nodes += more
    return _finish(nodes, [cur])


def comb_with_outputs(n: int, seed: int = 0) -> onnx.ModelProto:
    """A comb whose teeth and chain nodes now and then also write a graph output, are read by a
    dead node, or feed a second Sum that writes a graph output of its own."""
    rng = random.Random(seed)
    nodes, last = comb_nodes(n)
    outputs = [last]
    extra = []
    for node in nodes[:-1]:
        r = rng.random()
        if r < 0.05:
            outputs.append(node.output[0])
        elif r < 0.1:
            extra.append(helper.make_node("Abs", [node.output[0]], [f"dead_{node.name}"]))
            extra[-1].name = f"dead_{node.name}"
    side = [f"c{i}" for i in range(0, n, 7)]
    extra.append(helper.make_node("Sum", side, ["side"], name="side"))
    outputs.append("side")
    return _finish(nodes + extra, outputs)


def detector_comb(n: int) -> onnx.ModelProto:
    """A comb inside a detector-like graph: a Conv/Relu stem, teeth of every kind reading the
    stem (1x1 Conv, Mul by a per-channel weight, Transpose, ReduceMean, Relu), first node a
    Concat of the teeth into a 1x1 Conv, then a chain of Conv, Add (residual), Sigmoid, Mul,
    Transpose and a TopK (opaque) whose values go on, last node a Sum of the chain's end and the
    teeth, then a head (Conv + Sigmoid) and a second graph output read from the middle."""
    inits: list[onnx.TensorProto] = []

    def weight(name: str, shape: list[int]) -> str:
        inits.append(
            numpy_helper.from_array(
                np.linspace(-0.5, 0.5, int(np.prod(shape)), dtype=np.float32).reshape(shape), name
            )
        )
        return name

    nodes = [
        helper.make_node(
            "Conv", ["x", weight("w_stem", [4, 4, 3, 3])], ["s0"], "stem", pads=[1] * 4
        ),
        helper.make_node("Relu", ["s0"], ["s1"], "stem_relu"),
    ]
    teeth = []
    for i in range(n):
        t = f"c{i}"
        kind = i % 5
        if kind == 0:
            nodes.append(helper.make_node("Conv", ["s1", weight(f"wc{i}", [4, 4, 1, 1])], [t], t))
        elif kind == 1:
            nodes.append(helper.make_node("Mul", ["s1", weight(f"m{i}", [1, 4, 1, 1])], [t], t))
        elif kind == 2:
            nodes.append(helper.make_node("Transpose", ["s1"], [t], t, perm=[0, 1, 3, 2]))
        elif kind == 3:
            nodes.append(helper.make_node("ReduceMean", ["s1"], [f"{t}r"], f"{t}r", axes=[1]))
            nodes.append(helper.make_node("Add", ["s1", f"{t}r"], [t], t))
        else:
            nodes.append(helper.make_node("Relu", ["s1"], [t], t))
        teeth.append(t)
    nodes.append(helper.make_node("Concat", teeth, ["cat"], "h0cat", axis=1))
    nodes.append(helper.make_node("Conv", ["cat", weight("w_h0", [4, 4 * n, 1, 1])], ["h0"], "h0"))
    k = weight("topk_k", [1])
    inits[-1] = numpy_helper.from_array(np.array([4], np.int64), k)
    cur = "h0"
    for i in range(1, n - 1):
        o, kind = f"h{i}", i % 6
        if kind == 0:
            nodes.append(helper.make_node("Conv", [cur, weight(f"wh{i}", [4, 4, 1, 1])], [o], o))
        elif kind == 1:
            nodes.append(helper.make_node("Add", [cur, f"h{max(i - 3, 0)}"], [o], o))
        elif kind == 2:
            nodes.append(helper.make_node("Sigmoid", [cur], [o], o))
        elif kind == 3:
            nodes.append(helper.make_node("Mul", [cur, f"h{i - 1}"], [o], o))
        elif kind == 4:
            nodes.append(helper.make_node("Transpose", [cur], [o], o, perm=[0, 1, 3, 2]))
        else:
            nodes.append(helper.make_node("TopK", [cur, k], [o, f"{o}_i"], o, axis=1))
        cur = o
    nodes.append(helper.make_node("Sum", [cur, *teeth], ["last"], "last"))
    nodes.append(helper.make_node("Conv", ["last", weight("w_head", [4, 4, 1, 1])], ["hd"], "head"))
    nodes.append(helper.make_node("Sigmoid", ["hd"], ["y"], "head_sigmoid"))
    mid = f"h{n // 2}"
    return _finish(nodes, ["y", mid], inits)


def _all_three(model: onnx.ModelProto | Graph) -> dict[str, str | None]:
    tree = post_dominator_tree(model)
    assert tree == post_dominator_tree(model, method="lengauer-tarjan")
    assert tree == post_dominator_tree(model, method="networkx")
    assert tree == post_dominator_tree(model, method="lca")
    return tree


# ---------------------------------------------------------------------------- same trees


def test_comb_tree():
    n = 60
    tree = _all_three(comb(n))
    assert all(tree[f"c{i}"] == f"h{n - 1}" for i in range(n))  # the two readers meet at the end
    assert all(tree[f"h{i}"] == f"h{i + 1}" for i in range(n - 1))
    assert tree[f"h{n - 1}"] is None


@pytest.mark.parametrize(
    "model",
    [
        combs(3, 40),
        comb_with_outputs(80, 1),
        comb_with_outputs(80, 2),
        detector_comb(40),
        detector_comb(7),
    ],
    ids=["three-combs", "outputs-1", "outputs-2", "detector", "detector-small"],
)
def test_comb_variants_same_tree(model):
    onnx.checker.check_model(model, full_check=True)
    tree = _all_three(model)
    assert sum(v is not None for v in tree.values()) > len(tree) // 4  # not only the exit


def test_random_dags_same_tree_as_networkx_lca_and_brute_force():
    rng = random.Random(191)
    for _ in range(300):
        spec, outputs = _random_dag(rng)
        m = _model(spec, outputs)
        assert _all_three(m) == _brute_ipdom(spec, outputs)


def test_wide_random_dags_same_tree():
    # multi-output nodes, several graph inputs and outputs, dead nodes, readers of many
    rng = random.Random(1910)
    for _ in range(200):
        spec, outputs, inputs = _wide_dag(rng)
        _all_three(_model(spec, outputs, inputs))


@pytest.mark.realmodel
@pytest.mark.parametrize("name", [*MODELS, *ZOO])
def test_real_models_same_tree(name):
    graph = Graph(onnx.load(str(fetch_model(name))))
    tree = _all_three(graph)
    assert len(tree) == len(graph.nodes)


def test_unknown_method_names_the_three():
    with pytest.raises(OptionError, match=r"use 'lengauer-tarjan', 'networkx' or 'lca'$"):
        post_dominator_tree(comb(3), method="tarjan")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- work


def _lines_run(graph: Graph) -> int:
    """Lines executed in the dominator code (graphopt's and networkx's) for the default tree."""
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
        post_dominator_tree(graph)
    finally:
        sys.settrace(None)
    return count


def test_comb_takes_work_linear_in_its_size():
    # networkx (the old default) intersected each tooth's two readers by walking up the chain:
    # ~n² steps
    small, big = Graph(comb(500)), Graph(comb(1000))
    a, b = _lines_run(small), _lines_run(big)
    assert b < 2.3 * a  # twice the nodes, about twice the work (quadratic: 4×)
    assert b < 120 * 2000  # lines per node


def test_10k_comb():
    n = 10_000
    tree = post_dominator_tree(comb(n))
    assert tree[f"h{n - 1}"] is None and tree["c0"] == tree[f"c{n - 1}"] == f"h{n - 1}"
    assert all(tree[f"h{i}"] == f"h{i + 1}" for i in range(n - 1))
