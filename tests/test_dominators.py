"""graphopt.analysis.dominators: hand-written trees, and two implementations checked against a
brute-force definition on random DAGs."""

from __future__ import annotations

import random

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.analysis import dominators as dom
from graphopt.analysis import post_dominator_tree
from graphopt.errors import LoadError
from graphopt.ir import Graph

Spec = list[tuple[str, list[str], list[str]]]  # (node name, input tensors, output tensors)


def _model(nodes: Spec, outputs: list[str], inputs: tuple[str, ...] = ("x",)) -> onnx.ModelProto:
    """A structural model: every node is an op of a test domain (never run, only analysed)."""
    protos = [helper.make_node("Op", i, o, name=n, domain="test") for n, i, o in nodes]
    graph = helper.make_graph(
        protos,
        "g",
        [helper.make_tensor_value_info(i, TensorProto.FLOAT, [1]) for i in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1]) for o in outputs],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("test", 1)]
    )


def _both(model: onnx.ModelProto) -> dict[str, str | None]:
    a = post_dominator_tree(model, method="networkx")
    b = post_dominator_tree(model, method="lca")
    assert a == b
    return a


def test_chain():
    m = _model([("A", ["x"], ["a"]), ("B", ["a"], ["b"]), ("C", ["b"], ["y"])], ["y"])
    assert _both(m) == {"A": "B", "B": "C", "C": None}


def test_diamond():
    m = _model(
        [
            ("A", ["x"], ["a"]),
            ("B", ["a"], ["b"]),
            ("C", ["a"], ["c"]),
            ("D", ["b", "c"], ["y"]),
        ],
        ["y"],
    )
    assert _both(m) == {"A": "D", "B": "D", "C": "D", "D": None}


def test_unbalanced_diamond_skips_to_the_join():
    # A → B → C → E and A → D → E: ipdom(A) = E, not C.
    m = _model(
        [
            ("A", ["x"], ["a"]),
            ("B", ["a"], ["b"]),
            ("C", ["b"], ["c"]),
            ("D", ["a"], ["d"]),
            ("E", ["c", "d"], ["y"]),
        ],
        ["y"],
    )
    assert _both(m) == {"A": "E", "B": "C", "C": "E", "D": "E", "E": None}


def test_multi_output_node():
    m = _model(
        [
            ("A", ["x"], ["a"]),
            ("S", ["a"], ["s0", "s1"]),
            ("B", ["s0"], ["b"]),
            ("C", ["s1"], ["c"]),
            ("D", ["b", "c"], ["y"]),
        ],
        ["y"],
    )
    assert _both(m) == {"A": "S", "S": "D", "B": "D", "C": "D", "D": None}


def test_node_feeding_two_graph_outputs():
    m = _model(
        [
            ("A", ["x"], ["a"]),
            ("B1", ["a"], ["y1"]),
            ("B2", ["a"], ["y2"]),
        ],
        ["y1", "y2"],
    )
    assert _both(m) == {"A": None, "B1": None, "B2": None}


def test_graph_output_that_is_also_consumed():
    # A writes graph output a and B reads it: the exit follows A directly.
    m = _model([("A", ["x"], ["a"]), ("B", ["a"], ["y"])], ["a", "y"])
    assert _both(m) == {"A": None, "B": None}


def test_dead_node_flows_into_the_exit():
    m = _model(
        [
            ("A", ["x"], ["a"]),
            ("Dead", ["a"], ["unused"]),
            ("C", ["a"], ["c"]),
            ("D", ["c"], ["y"]),
        ],
        ["y"],
    )
    assert _both(m) == {"A": None, "Dead": None, "C": "D", "D": None}


def test_dominator_tree_hand_cases():
    m = _model(
        [
            ("A", ["x"], ["a"]),
            ("B", ["a"], ["b"]),
            ("C", ["a"], ["c"]),
            ("D", ["b", "c"], ["d"]),
            ("E", ["d", "x"], ["y"]),  # reads the graph input too: only the entry dominates it
        ],
        ["y"],
    )
    assert dom.dominator_tree(m) == {"A": None, "B": "A", "C": "A", "D": "A", "E": None}


def test_accepts_graph_path_and_proto_without_mutating_it(tmp_path):
    m = _model([("", ["x"], ["a"]), ("", ["a"], ["y"])], ["y"])
    before = m.SerializeToString()
    tree = post_dominator_tree(m)
    assert m.SerializeToString() == before  # unnamed nodes were named on a copy only
    assert tree == {"Op_0": "Op_1", "Op_1": None}
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    assert post_dominator_tree(path) == tree
    assert post_dominator_tree(str(path)) == tree
    assert post_dominator_tree(Graph(onnx.ModelProto.FromString(before))) == tree
    assert dom.topological_order(m) == ["Op_0", "Op_1"]


def test_bad_input_and_method():
    with pytest.raises(LoadError, match="cannot analyse a int"):
        post_dominator_tree(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown post-dominator method"):
        post_dominator_tree(_model([("A", ["x"], ["y"])], ["y"]), method="magic")  # type: ignore[arg-type]


def test_topological_order_of_shuffled_nodes():
    spec: Spec = [("A", ["x"], ["a"]), ("B", ["a"], ["b"]), ("C", ["a", "b"], ["y"])]
    m = _model(list(reversed(spec)), ["y"])
    # The ONNX loader refuses unsorted files; the IR sorts them for analysis.
    order = dom.topological_order(Graph(m))
    assert order.index("A") < order.index("B") < order.index("C")


# ---------------------------------------------------------------------------- random DAGs


def _random_dag(rng: random.Random) -> tuple[Spec, list[str]]:
    n = rng.randint(1, 18)
    tensors = ["x"]
    spec: Spec = []
    for i in range(n):
        k = rng.randint(1, min(3, len(tensors)))
        # favour recent tensors so chains and diamonds appear, not only fans from x
        pool = tensors[-6:] if rng.random() < 0.7 else tensors
        ins = rng.sample(pool, min(k, len(pool)))
        outs = [f"t{i}_{j}" for j in range(rng.choice((1, 1, 1, 2)))]
        spec.append((f"n{i}", ins, outs))
        tensors.extend(outs)
    produced = [t for _, _, o in spec for t in o]
    outputs = [produced[-1]] + [t for t in produced[:-1] if rng.random() < 0.1]
    return spec, outputs


def _brute_ipdom(spec: Spec, outputs: list[str]) -> dict[str, str | None]:
    """v post-dominates u ⇔ u cannot reach the exit once v is removed; ipdom = the closest."""
    readers: dict[str, list[str]] = {}
    for name, ins, _ in spec:
        for t in ins:
            readers.setdefault(t, []).append(name)
    succ = {name: sorted({r for t in outs for r in readers.get(t, [])}) for name, _, outs in spec}
    exits = {name for name, _, outs in spec if not succ[name] or set(outs) & set(outputs)}

    def reaches_exit(u: str, removed: str) -> bool:
        seen, stack = set(), [u]
        while stack:
            w = stack.pop()
            if w == removed or w in seen:
                continue
            seen.add(w)
            if w in exits:
                return True
            stack.extend(succ[w])
        return False

    names = [n for n, _, _ in spec]
    pdoms = {u: {v for v in names if v != u and not reaches_exit(u, v)} for u in names}
    result: dict[str, str | None] = {}
    for u in names:
        closest = [v for v in pdoms[u] if pdoms[u] - {v} == pdoms[v]]
        assert len(closest) <= 1
        result[u] = closest[0] if closest else None
        assert bool(closest) == bool(pdoms[u])
    return result


def test_random_dags_agree_with_brute_force():
    rng = random.Random(20240607)
    non_trivial = 0
    for _ in range(250):
        spec, outputs = _random_dag(rng)
        m = _model(spec, outputs)
        expected = _brute_ipdom(spec, outputs)
        assert post_dominator_tree(m, method="networkx") == expected
        assert post_dominator_tree(m, method="lca") == expected
        non_trivial += any(v is not None for v in expected.values())
    assert non_trivial > 150  # the generator makes real trees, not just exits


def test_tree_depths():
    tree = {"A": "B", "B": "C", "C": None, "D": None}
    assert dom.tree_depths(tree) == {"A": 3, "B": 2, "C": 1, "D": 1}


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["layout_cdla", "common_det"])
def test_real_models_both_methods_agree(real_model, name):
    path = real_model(name)
    a = post_dominator_tree(path, method="networkx")
    b = post_dominator_tree(path, method="lca")
    assert a == b
    assert len(a) == len(onnx.load(str(path), load_external_data=False).graph.node)
    # Every node that writes a graph output hangs under the exit.
    g = Graph(onnx.load(str(path)))
    for name_ in a:
        if dom.writes_graph_output(g, name_):
            assert a[name_] is None
