"""Read-only analyses of a graph: shapes and dtypes, op kinds, use-def and dominator trees,
and the TVM FuseOps partition. Nothing in this package mutates a graph."""

from graphopt.analysis.dominators import dominator_tree, post_dominator_tree, topological_order
from graphopt.analysis.fuse_ops import FusionGroup, fuse_ops, fusion_groups
from graphopt.analysis.op_kinds import OpKind, node_kind, op_kind
from graphopt.analysis.shapes import ShapeFacts, shape_facts

__all__ = [
    "FusionGroup",
    "OpKind",
    "ShapeFacts",
    "dominator_tree",
    "fuse_ops",
    "fusion_groups",
    "node_kind",
    "op_kind",
    "post_dominator_tree",
    "shape_facts",
    "topological_order",
]
