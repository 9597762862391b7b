"""The error merge and split raise (a `GraphoptError`, so the CLI prints one line, exit 2)."""

from __future__ import annotations

from graphopt.errors import GraphoptError


class MergeError(GraphoptError):
    """Models cannot be merged (irreconcilable opsets or inputs), or a split asks for what the
    model does not have."""
