"""A remembered pipeline parse is handed out as a copy built field by field
(`pipeline._copied`), what `copy.deepcopy` gives at a fraction of its cost: equal pipelines, no
mutable object shared with the cache, an object met twice copied once, and anything that is not
a plain pipeline, step, pass or list deep-copied as before."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass, field

from graphopt.passes.base import Pass
from graphopt.pipeline import (
    PassStep,
    Pipeline,
    RepeatStep,
    _copied,
    _parsed,
    builtin_pipelines,
    load_pipeline,
)


def _walk(value: object, seen: dict[int, object]) -> None:
    """Every object reachable from a pipeline, by id (atoms included)."""
    if id(value) in seen:
        return
    seen[id(value)] = value
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _walk(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, seen)
    elif hasattr(value, "__dict__"):
        for item in vars(value).values():
            _walk(item, seen)


def test_every_builtin_pipeline_copies_as_deepcopy_does():
    for name, path in builtin_pipelines().items():
        load_pipeline(name)
        cached = next(hit[0] for key, hit in _parsed.items() if key[1] == str(path))
        mine, theirs = _copied(cached), copy.deepcopy(cached)
        assert mine == theirs and pickle.dumps(mine) == pickle.dumps(theirs), name
        original: dict[int, object] = {}
        _walk(cached, original)
        copied: dict[int, object] = {}
        _walk(mine, copied)
        shared = [v for k, v in copied.items() if k in original]
        assert all(isinstance(v, str | int | float | type(None)) for v in shared), name


@dataclass
class _Options(Pass):
    name = "test-copy-options"
    table: dict[str, list[int]] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)


def test_shared_objects_stay_shared_and_other_kinds_are_deep_copied():
    groups = ["a", "b"]
    one = _Options(table={"k": [1, 2]}, groups=groups)
    pipeline = Pipeline("p", [PassStep(one), RepeatStep([PassStep(one)]), PassStep(_Options())])
    pipeline.steps[2].pass_.groups = groups  # type: ignore[union-attr]
    out = _copied(pipeline)
    assert out == copy.deepcopy(pipeline)
    first, repeated, third = out.steps[0], out.steps[1].steps[0], out.steps[2]
    assert first.pass_ is repeated.pass_ is not one  # one pass in two steps: one copy
    assert first.pass_.groups is third.pass_.groups is not groups  # one list: one copy
    assert first.pass_.table == {"k": [1, 2]} and first.pass_.table is not one.table
    assert first.pass_.table["k"] is not one.table["k"]  # deep-copied
