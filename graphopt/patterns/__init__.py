"""Declarative rewrite rules: the rule format, the matcher and the rewriter.

Built-in rules live in the data folder `patterns/*.yaml` (shipped in the wheel); users add rule
files from a pipeline YAML (`rules: [my_rules.yaml]`). `rule_set(extra_files)` loads and
validates them all; `RuleRunner` applies a selection of them to a `Graph`. Passes choose the
rules by group (see `graphopt.passes.fuse_patterns`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from graphopt._resources import builtin_dir
from graphopt.errors import PipelineError
from graphopt.patterns.engine import Match, Refuse
from graphopt.patterns.rewrite import RuleRunner, RunStats
from graphopt.patterns.rules import Rule, load_rule_file, parse_rules


def builtin_rule_files() -> list[Path]:
    """The built-in rule files, in load order (file name order)."""
    return list(_builtin_rule_files())


@functools.lru_cache(maxsize=1)
def _builtin_rule_files() -> tuple[Path, ...]:
    # Package data does not change while the process runs; globbing it per pass costs ~1 ms.
    return tuple(sorted(builtin_dir("patterns").glob("*.yaml")))


@functools.lru_cache(maxsize=1)
def _builtin_rules() -> tuple[tuple[Rule, ...], ...]:
    # Package data: read (and stat) once per process, not once per pass.
    return tuple(tuple(load_rule_file(path)) for path in _builtin_rule_files())


def rule_set(extra_files: Iterable[str | Path] = ()) -> list[Rule]:
    """Built-in rules followed by the rules of `extra_files`; rule names must be unique."""
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    files = [*_builtin_rules(), *(load_rule_file(path) for path in extra_files)]
    for loaded in files:
        for rule in loaded:
            if rule.name in seen:
                first = seen[rule.name]
                raise PipelineError(
                    f"{rule.where()}: rule {rule.name!r} is already defined at {first.where()}"
                )
            seen[rule.name] = rule
            rules.append(rule)
    return rules


def select(rules: Iterable[Rule], groups: Iterable[str], names: Iterable[str] = ()) -> list[Rule]:
    """Rules in any of `groups` or named in `names`, in load order; unknown names raise."""
    rules = list(rules)
    wanted_groups, wanted_names = set(groups), set(names)
    known_groups = {r.group for r in rules}
    known_names = {r.name for r in rules}
    unknown = (wanted_names - known_names) | (wanted_groups - known_groups - {"user"})
    if unknown:
        raise PipelineError(
            f"unknown rule or group {sorted(unknown)[0]!r}; groups: {', '.join(sorted(known_groups))}"
        )
    return [r for r in rules if r.group in wanted_groups or r.name in wanted_names]


__all__ = [
    "Match",
    "Refuse",
    "Rule",
    "RuleRunner",
    "RunStats",
    "builtin_rule_files",
    "load_rule_file",
    "parse_rules",
    "rule_set",
    "select",
]
