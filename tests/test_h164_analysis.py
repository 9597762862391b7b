"""Review H164 of the analysis helpers: each test failed before its fix."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper

from graphopt.analysis import dominator_tree, fuse_ops, post_dominator_tree
from graphopt.errors import LoadError
from graphopt.ir import Graph


def _value(name: str):  # type: ignore[no-untyped-def]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [2])


def _edited_to_read_itself() -> Graph:
    """x → Add(x, x) → y → Relu → z, then Add's second input set to y, its own output (the
    loader refuses such a model; an edit through the Graph API makes it)."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "x"], ["y"], name="add"),
            helper.make_node("Relu", ["y"], ["z"], name="relu"),
        ],
        "g",
        [_value("x")],
        [_value("z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    g = Graph(model)
    g.set_input(g.nodes["add"], 1, "y")
    return g


@pytest.mark.parametrize(
    "analyse",
    [
        post_dominator_tree,
        lambda g: post_dominator_tree(g, method="lca"),
        dominator_tree,
        fuse_ops,
    ],
    ids=["post-dominators", "post-dominators-lca", "dominators", "fuse_ops"],
)
def test_a_node_reading_its_own_output_is_a_cycle_for_every_analysis(analyse) -> None:
    """`checked_order` (which fuse_ops now uses too) looked for a node reading its own output
    only in If/Loop/Scan bodies: both trees answered for the cyclic graph, and fuse_ops said
    the Add read its output 'in its If/Loop/Scan body'. Each now says what it read."""
    with pytest.raises(LoadError, match=r"^node 'add' \(Add\) reads its own output 'y'$"):
        analyse(_edited_to_read_itself())
