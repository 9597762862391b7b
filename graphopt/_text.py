"""Wording shared by the commands and the libraries' reports."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """`1 node`, `2 nodes`, `0 nodes`: a count and its noun in the number it takes (the reports
    said "1 nodes", "1 feeds", "1 models measured"). Regular plurals only."""
    return f"{n} {noun}{'s' * (n != 1)}"
