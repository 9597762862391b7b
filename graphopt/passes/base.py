"""The pass protocol, the pass registry and the context passes run in.

A pass is a dataclass with typed options, a kebab-case `name`, an `opt_level`, a docstring with
its rewrite written as math, and `run(graph, ctx) -> PassResult`. Passes never print or time
themselves: `PassContext` carries options and instruments (timing, node counts, verification,
IR dumps) that the pass manager calls around each pass.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from graphopt.ir import Graph

log = logging.getLogger("graphopt.passes")


@dataclass
class PassResult:
    """What a pass did: whether the graph changed, and counters (e.g. {"folded": 12})."""

    changed: bool
    stats: dict[str, int] = field(default_factory=dict)


class Instrument(Protocol):
    """Called by the pass manager around every pass (TVM's PassInstrument)."""

    def before_pass(self, pass_: Pass, graph: Graph, ctx: PassContext) -> None: ...

    def after_pass(
        self, pass_: Pass, graph: Graph, ctx: PassContext, result: PassResult
    ) -> None: ...


@runtime_checkable
class Retractable(Protocol):
    """An instrument that can forget what it recorded since a mark: the passes' work on an
    If/Loop/Scan body that is then kept as it was (`graphopt.subgraphs`)."""

    def mark(self) -> int: ...

    def retract(self, mark: int) -> None: ...


# What passes read from `PassContext.options` (besides their own dataclass options): the rule
# files of a pipeline and the user's opset upgrade (graphopt.passes.fuse_patterns).
# `subgraphs=False` keeps If/Loop/Scan bodies as they are (graphopt.pipeline.PassManager).
# `rule_kernels=False`: every rule through the generic engine, none through the hand-written
# matchers of `graphopt.patterns.kernels` (which must give the same model; for tests and bisecting)
CONTEXT_OPTIONS = frozenset({"rule_files", "upgrade_opset", "subgraphs", "rule_kernels"})


@dataclass
class PassContext:
    """Options and instruments shared by every pass of one pipeline run.

    `explain` collects, per rule or pass, where it applied and why it refused elsewhere.
    `facts` is a cache passes may share, cleared by `invalidate()` whenever a pass changes the
    graph. `lasting_facts` survives changes: it holds facts about tensors *by name* that stay
    true because a rewrite never changes the value of a tensor that keeps its name (shapes and
    dtypes); users must still check that the facts cover every tensor they ask about.
    `in_body`: the graph is an If/Loop/Scan body run as a model of its own (`graphopt.subgraphs`).
    `rebuild`: builds the graph again as `PassManager.run` got it, where that costs less than
    keeping a copy (a body's model, from the body it was made of, which stays as it is while
    the run lasts: `graphopt.subgraphs`); None where there is no such way.
    """

    opt_level: int = 2
    disabled: set[str] = field(default_factory=set)
    options: dict[str, Any] = field(default_factory=dict)
    instruments: list[Instrument] = field(default_factory=list)
    explain: list[tuple[str, str, str, str]] = field(default_factory=list)
    record_explanations: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    lasting_facts: dict[str, Any] = field(default_factory=dict)
    in_body: bool = False
    rebuild: Callable[[], Graph] | None = None

    def note(self, rule: str, node: str, outcome: str, reason: str = "") -> None:
        """Record that `rule` applied at `node` (outcome "applied") or refused with a reason."""
        if self.record_explanations:
            self.explain.append((rule, node, outcome, reason))

    def invalidate(self) -> None:
        self.facts.clear()


class Pass:
    """Base class of every pass. Subclasses are dataclasses; their fields are the options."""

    name: ClassVar[str] = ""
    opt_level: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ()
    # Whether the pass may run inside an If/Loop/Scan body, whose inputs and outputs are fixed
    # by the node that owns it: not for passes that add graph outputs, guards or functions.
    in_bodies: ClassVar[bool] = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        raise NotImplementedError


P = TypeVar("P", bound=type[Pass])

PASS_REGISTRY: dict[str, type[Pass]] = {}


def register_pass(cls: P) -> P:
    """Class decorator: add a pass to the one registry table, keyed by its kebab-case name."""
    # what a pipeline YAML, --disable and a dump file's name can hold: no '/', ':' or '_'
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name):
        raise ValueError(f"pass {cls.__name__} needs a kebab-case `name`, got {cls.name!r}")
    if cls.name in PASS_REGISTRY and PASS_REGISTRY[cls.name] is not cls:
        raise ValueError(f"two passes are named {cls.name!r}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"pass {cls.__name__} must be a dataclass")
    PASS_REGISTRY[cls.name] = cls
    return cls


def pass_options(cls: type[Pass]) -> dict[str, dataclasses.Field[Any]]:
    """The options a pass takes, by name (its dataclass fields)."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]


def all_passes() -> dict[str, type[Pass]]:
    """The registry, with every built-in pass module imported."""
    from graphopt.passes import _load_builtin_passes

    _load_builtin_passes()
    return dict(PASS_REGISTRY)


Callback = Callable[[Pass, Graph, PassContext], None]
