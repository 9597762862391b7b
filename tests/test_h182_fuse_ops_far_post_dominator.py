"""H182: FuseOps on nodes whose post-dominator is far away (each node of a chain also read by
one Sum or Concat at its end) walks at most about the size cap per node, not the rest of the
graph (three times) per node: Sum of a 4,000-node chain took 31 s, now under 1 s. The groups
are the same as before (hard-coded here from the parent's answer)."""

from __future__ import annotations

import importlib

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.analysis import fuse_ops, fusion_groups

fuse_ops_module = importlib.import_module("graphopt.analysis.fuse_ops")  # (the package's name
# fuse_ops is the function)


def _chain_into_one(n: int, op: str) -> onnx.ModelProto:
    """x → n0 → n1 → ... → n{n-1} (Sigmoid/Relu), and every n_i's output into one `op`."""
    nodes, outs, cur = [], [], "x"
    for i in range(n):
        nodes.append(
            helper.make_node("Relu" if i % 2 else "Sigmoid", [cur], [f"t{i}"], name=f"n{i}")
        )
        cur = f"t{i}"
        outs.append(cur)
    extra = {"axis": 1} if op == "Concat" else {}
    nodes.append(helper.make_node(op, outs, ["y"], name="last", **extra))
    graph = helper.make_graph(
        nodes,
        "chain_into_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("op", "pattern"), [("Sum", "BROADCAST"), ("Concat", "INJECTIVE")])
def test_groups_as_before(op, pattern):
    model = _chain_into_one(40, op)
    capped = fusion_groups(model, 8)  # the parent's answer: 33 singletons, the last 7 + op
    assert [(g.nodes[0], len(g.nodes)) for g in capped] == [
        *((f"n{i}", 1) for i in range(33)),
        ("n33", 8),
    ]
    assert capped[-1].nodes == [*(f"n{i}" for i in range(33, 40)), "last"]
    assert [g.pattern.name for g in capped] == ["ELEMWISE"] * 33 + [pattern]
    whole = fusion_groups(model, 256)
    assert len(whole) == 1 and len(whole[0].nodes) == 41 and whole[0].pattern.name == pattern
    assert fuse_ops(model, 40) == [["n0"], [*(f"n{i}" for i in range(1, 40)), "last"]]


@pytest.mark.parametrize("op", ["Sum", "Concat"])
def test_walk_bounded_by_the_cap(monkeypatch, op):
    n, cap = 1500, 16
    walked = [0]
    paths = fuse_ops_module._Partitioner._paths

    def counting(self, src, sink):  # type: ignore[no-untyped-def]
        for v in paths(self, src, sink):
            walked[0] += 1
            yield v

    monkeypatch.setattr(fuse_ops_module._Partitioner, "_paths", counting)
    groups = fuse_ops(_chain_into_one(n, op), cap)
    assert sorted(len(g) for g in groups)[-1] == cap  # the last 15 nodes and the op
    assert sum(len(g) for g in groups) == n + 1 and len(groups) == n + 1 - cap + 1
    # each node's walk stops past the cap (the parent walked the rest of the chain, three
    # times: ~3.4 million vertices here)
    assert walked[0] <= 4 * n * (cap + 2)
