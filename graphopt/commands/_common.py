"""Pieces several sub-commands share: the `--shapes` flag, comma-separated name lists, and
reading a `.npz` file of feeds.

What it does not do: parse shapes (`graphopt.backends.tensorrt.parse_shapes` does), or turn a
read failure into a graphopt error (each command decides what a bad file means).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_shapes_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """`--shapes NAME:DIMS ...`, repeatable, collected into one list (default empty)."""
    parser.add_argument(
        "--shapes",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME:DIMS",
        help=help,
    )


def comma_list(text: str | None) -> list[str]:
    """'a,b,,c' → ['a', 'b', 'c']; None or '' → []."""
    return [n for n in (text or "").split(",") if n]


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a `.npz` file, by key (loaded into memory, the file closed)."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
