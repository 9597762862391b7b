"""Wording shared by the commands and the libraries' reports."""

from __future__ import annotations

import os


def counted(n: int, noun: str) -> str:
    """`1 node`, `2 nodes`, `0 nodes`: a count and its noun in the number it takes (the reports
    said "1 nodes", "1 feeds", "1 models measured"). Regular plurals only."""
    return f"{n} {noun}{'s' * (n != 1)}"


def shown(value: str | os.PathLike[str]) -> str:
    """A value the user gave (a path, an option's text, a sample's name) as a one-line error
    shows it: as given, or quoted and escaped as `repr` writes it where it holds a character that
    is not printable (`--prefix 'a\\nb'`: a newline in it made the error two lines)."""
    text = os.fspath(value)
    return text if text.isprintable() else repr(text)
