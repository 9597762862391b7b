"""Read-only analyses of a graph: shapes and dtypes, op kinds, use-def and dominator trees,
and the TVM FuseOps partition. Nothing in this package mutates a graph."""

from graphopt.analysis.shapes import ShapeFacts, shape_facts

__all__ = ["ShapeFacts", "shape_facts"]
