"""STYLE.md's one direction of dependencies for graphopt.analysis: at run time, no analysis
module imports the pass layer or anything above it (an import under `if TYPE_CHECKING:` is
for annotations only and allowed). Read from the source with `ast`, so it also catches a
function-level (lazy) import that only runs on some calls."""

from __future__ import annotations

import ast
from pathlib import Path

import graphopt.analysis

ANALYSIS = Path(graphopt.analysis.__file__).parent

# ir ← analysis ← patterns/passes ← quant ← pipeline/api ← cli (and what sits on them)
ABOVE_ANALYSIS = (
    "graphopt.passes",
    "graphopt.patterns",
    "graphopt.quant",
    "graphopt.pipeline",
    "graphopt.api",
    "graphopt.cli",
    "graphopt.commands",
    "graphopt.subgraphs",
    "graphopt.multitask",
    "graphopt.distill",
)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) of every import outside an `if TYPE_CHECKING:` body."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the analysis package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((node.lineno, base))
            # `from graphopt import passes` imports graphopt.passes
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _offences(source: str, package: str = "graphopt.analysis") -> list[str]:
    tree = ast.parse(source)
    return [
        f"line {line}: {module}"
        for line, module in _runtime_imports(tree, package)
        if any(module == up or module.startswith(up + ".") for up in ABOVE_ANALYSIS)
    ]


def test_no_analysis_module_imports_the_pass_layer_at_run_time():
    files = sorted(ANALYSIS.glob("*.py"))
    assert len(files) >= 5  # the package was found
    bad = {f.name: _offences(f.read_text()) for f in files}
    assert {name: found for name, found in bad.items() if found} == {}


def test_the_check_sees_every_import_form():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from graphopt.passes.base import PassContext\n"  # allowed
        "else:\n"
        "    import graphopt.quant\n"  # runs
        "def f():\n"
        "    from graphopt.passes import cleanup\n"  # lazy, still a run-time import
        "from graphopt import pipeline\n"
        "from ..passes.base import Pass\n"
        "from graphopt.ir import Graph\n"  # below analysis: fine
        "from graphopt.passes_util import x\n"  # not the package graphopt.passes
    )
    assert _offences(source) == [
        "line 5: graphopt.quant",
        "line 7: graphopt.passes",
        "line 7: graphopt.passes.cleanup",
        "line 8: graphopt.pipeline",
        "line 9: graphopt.passes.base",
        "line 9: graphopt.passes.base.Pass",
    ]
