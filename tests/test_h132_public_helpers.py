"""Helpers other modules use have public names; one loop finds the folders a write makes; the
accuracy search's count says "1 model measured" through Progress's own units.

cache.py imported model_io's `_make_folders` and `_remove_folders`, demo.py realmodels'
`_member_path`, merge.py opsets' `_since`; cache's `missing_folders` repeated the first loop of
`_make_folders`; quantize's `_SearchCount` string-replaced Progress's "1 models measured"."""

from __future__ import annotations

import ast
import io
import os
from pathlib import Path

import pytest

import graphopt
from graphopt.quant.progress import Progress

_ROOT = Path(graphopt.__file__).parent


def _private_uses(relative: str) -> list[str]:
    """The private names `relative` (under graphopt/) takes from other graphopt modules."""
    tree = ast.parse((_ROOT / relative).read_text())
    modules: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graphopt"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.module}.{alias.name}")
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name.startswith("graphopt"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize(
    "relative", ["quant/cache.py", "commands/demo.py", "multitask/merge.py", "quant/api.py"]
)
def test_no_private_helper_of_another_module(relative: str) -> None:
    assert _private_uses(relative) == []


def test_one_loop_finds_the_folders_a_write_makes(tmp_path: Path) -> None:
    from graphopt.ir import model_io
    from graphopt.quant import cache as cache_io

    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")  # there, as a name: not made
    for cache, outer in [
        (tmp_path / "a" / "b" / "c.cache", tmp_path / "a"),
        (tmp_path / "dangling" / "c.cache", None),
    ]:
        folder = cache.parent
        missing = model_io.missing_folders(folder)
        expected = [] if outer is None else [outer, outer / "b"]
        assert missing == expected == cache_io.missing_folders(cache)
        if outer is None:
            continue
        made = model_io.make_folders(folder)
        assert made == missing and folder.is_dir()
        assert model_io.missing_folders(folder) == []
        model_io.remove_folders(made)
        assert not outer.exists()


def test_the_search_count_is_progress_with_units() -> None:
    from graphopt.commands import quantize

    stream = io.StringIO()
    search = quantize._search_count(stream)
    assert type(search) is Progress  # no subclass rewriting its line
    lines = []
    for done in (0, 1, 2, 13):
        search.done = done
        lines.append(search.line(search.start))
    assert lines == [
        "accuracy search: 0 models measured, elapsed 0s",
        "accuracy search: 1 model measured, elapsed 0s",
        "accuracy search: 2 models measured, elapsed 0s",
        "accuracy search: 13 models measured, elapsed 0s",
    ]


def test_progress_without_units_or_with_a_total_is_as_before() -> None:
    bare = Progress(None, "work", io.StringIO())
    bare.done = 1
    assert bare.line(bare.start) == "work 1 [0s]"
    bar = Progress(4, "calibrating", io.StringIO(), units=("feed", "feeds"))
    bar.done = 1
    assert bar.line(bar.start).startswith("calibrating 1/4 [======")
