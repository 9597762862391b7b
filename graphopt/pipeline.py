"""Pipelines: YAML recipes of passes, validated against the registry, and the pass manager.

Pipeline YAML (the built-ins live in `passes/*.yaml`):

    name: default                 # optional, defaults to the file name
    description: portable ONNX    # optional
    opt_level: 2                  # optional; passes above it are skipped (an included
                                  # pipeline's caps its own steps: the lower level wins;
                                  # the user's opt_level wins over both)
    rules: [my_rules.yaml]        # optional extra pattern-rule files (relative to this file);
                                  # a rule pass must select them (`fuse-patterns` runs the
                                  # `user` group), else a PipelineError
    passes:
      - eliminate-dead-code                      # a pass with default options
      - constant-folding: {size_limit: 1048576}  # a pass with options
      - repeat:                                  # run until nothing changes
          max_iterations: 8                      # (1 to 100; default 8)
          passes: [fold-batchnorm, eliminate-identity]
      - include: simplify                        # the steps of another pipeline (built-in
                                                 # name, or a path relative to this file)
      - if_changed: [fold-batchnorm]             # only when the step before changed the graph
                                                 # (after an include: any step it made)

Every error (unknown pass or option, wrong type, bad YAML, a `repeat:` or `if_changed:` group
that holds no pass) is a `PipelineError` naming the file, the line, and the valid choices. A
top-level `passes: []` is a pipeline that runs no pass (loading and saving only), as asked.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import logging
import os
import re
import reprlib
import threading
import time
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PosixPath, WindowsPath
from typing import Any

import onnx
import yaml

from graphopt._resources import builtin_dir
from graphopt._text import shown
from graphopt.analysis.inference_aborts import full_check
from graphopt.errors import (
    CHECKER_ERRORS,
    GraphoptError,
    PassError,
    PipelineError,
    SaveError,
    VerifyError,
    first_line,
)
from graphopt.ir import Graph
from graphopt.passes.base import Pass, PassContext, PassResult, all_passes, pass_options
from graphopt.passes.constants import ConstantsToInitializers
from graphopt.subgraphs import optimize_bodies

log = logging.getLogger("graphopt.pipeline")


@dataclass
class PassStep:
    pass_: Pass
    line: int = 0
    source: str = ""  # the pipeline file the step is written in (an included one's, included)
    # the lowest `opt_level:` of the included pipelines the step came through (None: none set
    # one); it caps the level the step runs at unless the user gave one (`level_of`)
    max_level: int | None = None


@dataclass
class RepeatStep:
    steps: list[Step]
    max_iterations: int = 8
    line: int = 0
    source: str = ""  # the pipeline file the group is written in (an included one's, included)


@dataclass
class IfChangedStep:
    """Steps that run only when the step before them changed the graph (`if_changed:`): the
    last `watch` steps, which an `include:` before it made (all of the included pipeline's)."""

    steps: list[Step]
    line: int = 0
    watch: int = 1


Step = PassStep | RepeatStep | IfChangedStep


@dataclass
class Pipeline:
    name: str
    steps: list[Step]
    source: str = "<code>"
    description: str = ""
    opt_level: int | None = None
    rule_files: list[Path] = field(default_factory=list)

    def pass_names(self) -> list[str]:
        return [s.pass_.name for s in self.pass_steps()]

    def pass_steps(self) -> list[PassStep]:
        """Every pass step, those in `repeat:` and `if_changed:` groups included, in order."""
        found: list[PassStep] = []

        def walk(steps: Sequence[Step]) -> None:
            for s in steps:
                if isinstance(s, PassStep):
                    found.append(s)
                else:
                    walk(s.steps)

        walk(self.steps)
        return found


# ---------------------------------------------------------------------------- loading


def builtin_pipelines() -> dict[str, Path]:
    """Built-in pipeline name → YAML path."""
    return {p.stem: p for p in sorted(builtin_dir("passes").glob("*.yaml"))}


def load_pipeline(spec: str | Path | Pipeline | None) -> Pipeline:
    """`None` → the built-in `default`; a built-in name; or a path to a YAML file. A str is a
    built-in's name before a file's; a `pathlib.Path` (any `os.PathLike`) is always the file:
    `Path("default")` ran the built-in even where the file `default` was there to be read."""
    if isinstance(spec, Pipeline):
        return spec
    if spec is None:
        spec = "default"
    builtins = builtin_pipelines()
    text_spec = str(spec)
    if isinstance(spec, str) and not spec:  # Path("") is ".": "not found" named no problem
        raise PipelineError(
            f"the pipeline name is empty: use one of {', '.join(builtins)} or a path to a YAML file"
        )
    if isinstance(spec, os.PathLike):
        path = Path(spec)
        if not path.is_file():
            found = _no_file(path, "pipeline", "pipeline file not found")
            named = f" (the built-in is named by the string {text_spec!r})"
            raise PipelineError(f"{shown(path)}: {found}{named * (text_spec in builtins)}")
    elif text_spec in builtins:
        return _parse_cached(
            builtins[text_spec].read_text(encoding="utf-8"),
            str(builtins[text_spec]),
            builtins[text_spec].parent,
        )
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise PipelineError(
                f"{shown(path)}: {_no_file(path, 'pipeline', 'pipeline file not found')}"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise PipelineError(f"{shown(path)}:{_not_utf8(e)}") from e
        except OSError as e:
            raise PipelineError(f"{shown(path)}: cannot read pipeline file: {e}") from e
        return _parse_cached(text, str(path), path.parent)
    raise PipelineError(
        f"unknown pipeline {text_spec!r}: use one of {', '.join(builtins)} or a path to a YAML file"
    )


def pipeline_files(path: str | Path) -> list[tuple[str, Path]]:
    """Every file that loading the pipeline file `path` reads, in order, with its role:
    ("pipeline", path), ("include", file) for each file an `include:` reads (transitively,
    built-ins included by name too), then ("rules", file) for each of its and its includes'
    rule files (once each, as loaded). A `PipelineError` or `OSError` as `load_pipeline`'s."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    pipeline, included = _parse_cached_with_files(text, str(path), path.parent)
    return [
        ("pipeline", path),
        *(("include", file) for file, _ in included),
        *(("rules", Path(file)) for file in pipeline.rule_files),
    ]


_PARSE_CACHE_SIZE = 32
# (text, file, folder) → the parse, the text of every file it included (read at parse time),
# and the text of each of its rule files (None: unreadable) once it was parsed
_parsed: collections.OrderedDict[
    tuple[str, str, Path],
    tuple[Pipeline, tuple[tuple[Path, str], ...], tuple[tuple[Path, str | None], ...]],
] = collections.OrderedDict()


# Threads share `_parsed`: between one's lookup and its move_to_end another could evict the
# entry (KeyError, a traceback, with more than _PARSE_CACHE_SIZE pipelines in use at once).
_parsed_lock = threading.Lock()


def _parse_cached(text: str, source: str, base_dir: Path) -> Pipeline:
    """`parse_pipeline`, remembering the parse of each (text, file) seen: YAML parsing costs
    more than small models take to optimize. A remembered parse is used only while every file
    it included (transitively), and every rule file it names, still has the text it had then
    (the parse refuses `rules:` no step runs: a rule file's edit can make it refuse). Every
    call gets its own copy of the passes."""
    return _parse_cached_with_files(text, source, base_dir)[0]


def _parse_cached_with_files(
    text: str, source: str, base_dir: Path
) -> tuple[Pipeline, tuple[tuple[Path, str], ...]]:
    """`_parse_cached`, with the (file, text) of every file the parse included."""
    key = (text, source, base_dir)
    with _parsed_lock:
        hit = _parsed.get(key)
    if hit is not None and all(_read_or_none(path) == seen for path, seen in (*hit[1], *hit[2])):
        with _parsed_lock:
            if key in _parsed:
                _parsed.move_to_end(key)
        return _copied(hit[0]), hit[1]
    included: list[tuple[Path, str]] = []
    pipeline = _parse_pipeline(text, source, base_dir, (), included)
    rules = tuple((Path(path), _read_or_none(Path(path))) for path in pipeline.rule_files)
    with _parsed_lock:
        _parsed[key] = (pipeline, tuple(included), rules)
        _parsed.move_to_end(key)
        while len(_parsed) > _PARSE_CACHE_SIZE:
            _parsed.popitem(last=False)
    return _copied(pipeline), tuple(included)


# immutable: shared by a copy (exact types: a subclass of one may hold more)
_ATOMS = frozenset({str, bytes, int, float, bool, type(None), PosixPath, WindowsPath})


def _copied(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """What `copy.deepcopy(value)` gives for a parsed pipeline, built directly (the default
    pipeline: ~260 -> ~80 µs, paid by every optimize): a pipeline, its steps and its passes are
    rebuilt field by field, lists copied, immutable values shared, an object met twice copied
    once (`memo`, as deepcopy's); anything else (an option of another kind, a class that
    customizes its copying) goes to `copy.deepcopy` with the same memo."""
    cls: Any = type(value)
    if cls in _ATOMS:
        return value
    if memo is None:
        memo = {}
    done = memo.get(id(value))
    if done is not None:
        return done
    if cls is list:
        new: Any = []
        memo[id(value)] = new
        new.extend(_copied(item, memo) for item in value)
        return new
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = _plain_copying(cls)
    if plain:
        new = cls.__new__(cls)
        memo[id(value)] = new
        new.__dict__.update({name: _copied(v, memo) for name, v in value.__dict__.items()})
    else:
        return copy.deepcopy(value, memo)
    return new  # (the originals stay alive in the parse cache: their ids stay theirs)


_PLAIN: dict[type, bool] = {}  # class → `_plain_copying(class)`


def _plain_copying(cls: type) -> bool:
    """Whether `cls` is a pipeline, step or pass class that `copy.deepcopy` copies as
    `cls.__new__` and a deep copy of its `__dict__` (no slots, no copy hooks of its own)."""
    return (
        issubclass(cls, Pipeline | PassStep | RepeatStep | IfChangedStep | Pass)
        and "__slots__" not in cls.__dict__
        and not hasattr(cls, "__deepcopy__")
        and not hasattr(cls, "__setstate__")
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        # object.__getstate__ is new in Python 3.11: a 3.10 class has none of its own
        and getattr(cls, "__getstate__", None) is getattr(object, "__getstate__", None)
    )


def _no_file(path: Path, kind: str, missing: str) -> str:
    """Why `path` is no file to read: a folder, or a pipe or device (whose text a second read,
    such as a sidecar's digest, would not see again), else `missing`. Both were "not found"."""
    if path.is_dir():
        return f"is a folder, not a {kind} file"
    if path.exists():
        return f"is not a regular file (a pipe or a device); give a {kind} file"
    return missing


def _not_utf8(error: UnicodeDecodeError) -> str:
    """ "<line>: not UTF-8 text: ..." for a pipeline file's bytes that `error` refused: it
    said "'utf-8' codec can't decode byte 0xff in position 37", a position in bytes, no line."""
    data, at = error.object, error.start
    line = data.count(b"\n", 0, at) + 1
    column = at - (data.rfind(b"\n", 0, at) + 1) + 1
    return f"{line}: not UTF-8 text: byte 0x{data[at]:02x} at column {column}; save it as UTF-8"


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


@dataclass
class _Parse:
    """What parsing one pipeline file needs to know (for `include:` and error messages)."""

    source: str  # the file as errors show it (`shown`)
    base_dir: Path | None
    registry: dict[str, type[Pass]]
    including: tuple[str, ...] = ()  # files being parsed further up, to refuse include cycles
    rule_files: list[Path] = field(default_factory=list)
    included: list[tuple[Path, str]] = field(default_factory=list)  # (file, text) read so far
    depth: int = 0  # the `repeat:` / `if_changed:` groups and `include:`s this file sits in
    made: list[int] = field(default_factory=lambda: [0])  # pass steps made (includes' too)
    open_lists: set[int] = field(default_factory=set)  # the step lists being parsed (their ids)
    rules_included_at: int = 0  # the line of the first `include:` that brought rule files


# How deep `repeat:` / `if_changed:` groups and `include:`s may nest (the built-ins: 5). Every
# level costs the parse, the copy and the run a few Python frames: ~200 levels were a
# RecursionError (a traceback), not an error naming the pipeline.
MAX_NESTING = 32
# How many pass steps one pipeline may expand to (the built-ins: 33 to 37). A group's alias
# is parsed again where it is used, and a file may be included many times: `&b [{repeat: *a}
# x9]`, `&c [{repeat: *b} x9]`, ... made 9**k steps, an 845-byte file took 36 s, one more
# level six minutes.
MAX_PASS_STEPS = 2000
# The most rounds a `repeat:` group may run (the built-ins: 4 and 8; every real model settles
# in 2). A group stops when a round changes nothing; one that never does (two rules that
# undo each other) ran max_iterations rounds: `max_iterations: 1000000` ran for hours.
MAX_ITERATIONS = 100


def parse_pipeline(
    text: str,
    source: str = "<string>",
    base_dir: Path | None = None,
    _including: tuple[str, ...] = (),
) -> Pipeline:
    return _parse_pipeline(text, source, base_dir, _including, [])


def _parse_pipeline(
    text: str,
    source: str,
    base_dir: Path | None,
    including: tuple[str, ...],
    included: list[tuple[Path, str]],
    depth: int = 0,
    made: list[int] | None = None,
) -> Pipeline:
    """`parse_pipeline`, appending (file, text) of every file an `include:` reads to `included`;
    `depth`: the groups and includes the file sits in (`MAX_NESTING`)."""
    # errors (and steps, whose place the rule checks name) show the file as `shown` writes it:
    # a path with a newline made them two lines; `file` is the path itself
    file, source = source, shown(source)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        if isinstance(e, yaml.reader.ReaderError):  # a control character: no mark, a position
            where = f"{source}:{text.count(chr(10), 0, e.position) + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PipelineError(f"{where}: invalid YAML: {problem}") from e
    except RecursionError as e:  # PyYAML composes nested collections recursively
        raise PipelineError(f"{source}: invalid YAML: collections nested too deep") from e
    if root is None:
        raise PipelineError(f"{source}: empty pipeline file")
    if not isinstance(root, yaml.MappingNode):
        raise PipelineError(
            f"{source}:{_line(root)}: a pipeline is a mapping with a `passes:` list"
        )
    top = _mapping(root, source)
    known = {"name", "description", "opt_level", "rules", "passes"}
    for key, (knode, _) in top.items():
        if key not in known:
            raise PipelineError(
                f"{source}:{_line(knode)}: unknown key {key!r}; valid keys: {', '.join(sorted(known))}"
            )
    if "passes" not in top:
        raise PipelineError(f"{source}:{_line(root)}: missing `passes:` list")
    pc = _Parse(source, base_dir, all_passes(), (*including, file), included=included, depth=depth)
    if made is not None:  # an include: one count with the pipeline that includes it
        pc.made = made
    steps = _steps(top["passes"][1], pc)
    name = _scalar(top["name"][1], source, str, "name") if "name" in top else Path(file).stem
    description = (
        _scalar(top["description"][1], source, str, "description") if "description" in top else ""
    )
    opt_level = (
        _scalar(top["opt_level"][1], source, int, "opt_level") if "opt_level" in top else None
    )
    if opt_level is not None:
        where = f"{source}:{_line(top['opt_level'][1])}: `opt_level:`"
        check_opt_level(opt_level, where)
    rule_files: list[Path] = pc.rule_files
    if "rules" in top:
        rnode = top["rules"][1]
        if not isinstance(rnode, yaml.SequenceNode):
            raise PipelineError(f"{source}:{_line(rnode)}: `rules:` is a list of rule-file paths")
        for item in rnode.value:
            rel = Path(_scalar(item, source, str))
            path = rel if rel.is_absolute() or base_dir is None else base_dir / rel
            if not path.is_file():
                missing = _no_file(path, "rule", "not found")
                raise PipelineError(f"{source}:{_line(item)}: rule file {str(rel)!r} {missing}")
            rule_files.append(path)
    pipeline = Pipeline(name, steps, file, description, opt_level, unique_files(rule_files))
    if not including and pipeline.rule_files:  # the whole pipeline, its includes' steps too
        if "rules" in top:
            refuse_rules_no_step_runs(pipeline, f"{source}:{_line(top['rules'][0])}")
        else:  # (it named line 1 and "`rules:`", which this file does not have)
            where = f"{source}:{pc.rules_included_at}"
            refuse_rules_no_step_runs(pipeline, where, given="the included pipeline's `rules:`")
    return pipeline


def refuse_rules_no_step_runs(
    pipeline: Pipeline,
    where: str,
    files: Sequence[str | os.PathLike[str]] | None = None,
    given: str = "`rules:`",
) -> None:
    """A `PipelineError` when the rule files of `pipeline` (its `rules:` and its includes')
    define rules that none of its rule passes selects: without a `fuse-patterns` step (which
    runs the `user` group) they never ran, without a word. `files`: only the rules of these
    (of `pipeline.rule_files`) count, as `given` names them (optimize's `rule_files=`). A rule
    file that fails to load, or a rule pass naming an unknown rule, is left to
    `check_rule_passes`."""
    from graphopt.passes.fuse_patterns import FusePatterns
    from graphopt.patterns import builtin_rule_files, rule_set, select

    try:
        rules = rule_set(pipeline.rule_files)  # the built-in rules first, then these files'
    except PipelineError:
        return
    builtin = {str(path) for path in builtin_rule_files()}
    # (as the rule loader names a file, `str(Path(path))`: "./r.yaml" is "r.yaml")
    counted = None if files is None else {str(Path(path)) for path in files}
    theirs = [
        r.name
        for r in rules
        if r.source not in builtin and (counted is None or r.source in counted)
    ]
    if not theirs:
        return
    for step in pipeline.pass_steps():
        p = step.pass_
        if not isinstance(p, FusePatterns):
            continue
        try:
            chosen = select(rules, p.groups or list(p.default_groups), p.rules)
        except PipelineError:
            return
        if any(r.name in theirs and r.name not in p.exclude for r in chosen):
            return
    named = ", ".join(repr(n) for n in theirs[:3]) + (" ..." if len(theirs) > 3 else "")
    raise PipelineError(
        f"{where}: {given} loads {len(theirs)} rule(s) ({named}) that no step runs: add a "
        "`fuse-patterns` step (it runs the `user` group; its `groups` option selects others), "
        "or name them in a rule pass's `rules` option"
    )


def unique_files(paths: Sequence[str | os.PathLike[str]]) -> list[Any]:
    """`paths` without a second mention of a file (another spelling of its path too), in
    order: a rule file a pipeline names twice (two includes of one pipeline, a file and the
    pipeline it includes) is loaded once, not refused as defining its rules twice."""
    seen: set[Path] = set()
    out = []
    for path in paths:
        try:
            key = Path(path).resolve()
        except (OSError, RuntimeError):  # a link loop: left to the loader to name
            key = Path(path)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.MappingNode, source: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        key = _scalar(k, source, str)
        if key in out:
            raise PipelineError(f"{source}:{_line(k)}: duplicate key {key!r}")
        out[key] = (k, v)
    return out


_KIND_TEXT = {int: "an integer", str: "a string"}


def _scalar(node: yaml.Node, source: str, kind: type, key: str = "") -> Any:
    """The value of a scalar `node` as `kind`; else a `PipelineError` naming the line and the
    `key` the value is given for ("expected a int, got '2'" named neither the key nor a type
    a reader knows)."""
    what = _KIND_TEXT.get(kind, kind.__name__)
    given = f"`{key}:` " if key else ""
    if not isinstance(node, yaml.ScalarNode):
        raise PipelineError(f"{source}:{_line(node)}: {given}expected {what} here")
    value = _construct(node, source) if node.tag != "tag:yaml.org,2002:str" else node.value
    if kind is str:
        # the text as written: str() of what YAML 1.1 reads made a step `- yes` "unknown pass
        # 'True'", and an empty `name:` named the pipeline 'None'
        if value is None:
            raise PipelineError(
                f"{source}:{_line(node)}: {given}expected {what}, got nothing (null)"
            )
        return node.value
    if not _is_instance(value, kind):
        kinds = {bool: "a boolean", float: "a float", str: "a string"}
        # a boolean as written: YAML 1.1 reads yes/no/on/off as one
        got = node.value if isinstance(value, bool) else repr(value)
        got += f" ({kinds[type(value)]})" if type(value) in kinds else ""
        raise PipelineError(f"{source}:{_line(node)}: {given}expected {what}, got {got}")
    return value


def _value(node: yaml.Node, source: str) -> Any:
    """The Python value of an option's node; a key given twice in a mapping inside it is an
    error (YAML loaders keep the last one without a word)."""
    stack, visited = [node], set()
    while stack:
        current = stack.pop()
        if id(current) in visited:  # an alias: checked where its anchor is
            continue
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: set[Any] = set()
            for k, v in current.value:
                key = _construct(k, source) if isinstance(k, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    raise PipelineError(f"{source}:{_line(k)}: duplicate key {key!r}")
                seen.add(key)
                stack.append(v)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return _construct(node, source)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"


def _construct(node: yaml.Node, source: str) -> Any:
    """The Python value of `node` as `yaml.safe_load` makes it; a tag it has no constructor
    for (!!python/object, !foo) or a value its tag refuses (!!int abc, !!binary zz) is a
    `PipelineError` at the node's line. So is a merge key (`<<: *defaults`): a key of its own
    to the checks here, it was refused as "could not determine a constructor for the tag
    'tag:yaml.org,2002:merge'"."""
    if node.tag == _MERGE_TAG:
        raise PipelineError(
            f"{source}:{_line(node)}: YAML merge keys (`<<`) are not supported in a pipeline: "
            "write the keys out, or give a whole mapping as an alias (*name)"
        )
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
        return None  # an empty value (`size_limit:`) serializes to no document at all
    try:
        return yaml.safe_load(yaml.serialize(node))
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as e:
        problem = getattr(e, "problem", None) or first_line(e)
        raise PipelineError(f"{source}:{_line(node)}: invalid value {node.tag}: {problem}") from e


def _steps(node: yaml.Node, pc: _Parse) -> list[Step]:
    source, registry = pc.source, pc.registry
    if not isinstance(node, yaml.SequenceNode):
        raise PipelineError(f"{source}:{_line(node)}: `passes:` must be a list")
    pc.open_lists.add(id(node))
    try:
        return _list_steps(node, pc, source, registry)
    finally:
        pc.open_lists.discard(id(node))


def _list_steps(
    node: yaml.SequenceNode, pc: _Parse, source: str, registry: dict[str, type[Pass]]
) -> list[Step]:
    steps: list[Step] = []
    made = 0  # how many steps the item before made (an include: all of its pipeline's)
    for item in node.value:
        line = _line(item)
        made_before, made, before = made, 1, len(steps)
        if isinstance(item, yaml.ScalarNode):  # (_scalar: a tag on the name is refused too)
            name = _scalar(item, source, str)
            _count_step(pc, line)
            steps.append(PassStep(_make_pass(name, {}, source, line, registry), line, source))
            continue
        if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
            raise PipelineError(
                f"{source}:{line}: each step is a pass name, `name: {{options}}`, `repeat:`, "
                "`if_changed:` or `include:`"
            )
        ((knode, vnode),) = item.value
        key = _scalar(knode, source, str)
        if key == "repeat":
            steps.append(_repeat(vnode, pc, line))
            continue
        if key == "if_changed":
            if not made_before:
                raise PipelineError(
                    f"{source}:{line}: `if_changed:` follows the step whose change it waits for"
                )
            if not isinstance(vnode, yaml.SequenceNode):
                raise PipelineError(f"{source}:{line}: `if_changed:` must be a list of steps")
            steps.append(IfChangedStep(_group(vnode, pc, "if_changed:", line), line, made_before))
            continue
        if key == "include":
            steps.extend(_include(_scalar(vnode, source, str, "include"), pc, line))
            made = len(steps) - before
            continue
        options: dict[str, tuple[int, Any]] = {}
        if isinstance(vnode, yaml.MappingNode):
            for opt, (k, v) in _mapping(vnode, source).items():
                options[opt] = (_line(k), _value(v, source))
        elif not (isinstance(vnode, yaml.ScalarNode) and vnode.tag == _NULL_TAG):
            # (any null, as YAML spells it: `Null` and `NULL` were refused, the string 'null'
            # was taken for no options)
            raise PipelineError(f"{source}:{_line(vnode)}: options of {key!r} must be a mapping")
        _count_step(pc, line)
        steps.append(PassStep(_make_pass(key, options, source, line, registry), line, source))
    return steps


def _include(spec: str, pc: _Parse, line: int) -> list[Step]:
    """The steps of another pipeline (a built-in name, or a path relative to this file)."""
    builtins = builtin_pipelines()
    if spec in builtins:
        path = builtins[spec]
    else:
        rel = Path(spec)
        path = rel if rel.is_absolute() or pc.base_dir is None else pc.base_dir / rel
        if path.exists() and not path.is_file():
            raise PipelineError(
                f"{pc.source}:{line}: cannot include {spec!r}: {shown(path)} {_no_file(path, 'pipeline', '')}"
            )
        if not path.is_file():
            raise PipelineError(
                f"{pc.source}:{line}: cannot include {spec!r}: no such built-in pipeline "
                f"({', '.join(builtins)}) or file"
            )
    # the same file under another spelling too (sub/../a.yaml, ./a.yaml, a link): else the
    # cycle grew a longer path each turn, never equal, until a RecursionError
    if any(_same_file(path, other) for other in pc.including):
        raise PipelineError(f"{pc.source}:{line}: include cycle through {shown(path)}")
    _refuse_deeper(pc, line, "`include:`")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PipelineError(f"{pc.source}:{line}: cannot read {shown(path)}:{_not_utf8(e)}") from e
    except OSError as e:
        raise PipelineError(f"{pc.source}:{line}: cannot read {shown(path)}: {e}") from e
    pc.included.append((path, text))
    sub = _parse_pipeline(
        text, str(path), path.parent, pc.including, pc.included, pc.depth + 1, pc.made
    )
    if sub.rule_files and not pc.rules_included_at:
        pc.rules_included_at = line
    pc.rule_files.extend(sub.rule_files)
    if sub.opt_level is not None:  # the included file's level gates its own passes
        for step in Pipeline(sub.name, sub.steps).pass_steps():
            if step.max_level is None or sub.opt_level < step.max_level:
                step.max_level = sub.opt_level
    return sub.steps


def _same_file(path: Path, source: str) -> bool:
    """Whether `source` (a pipeline being parsed: a file's path, or "<string>") is `path`."""
    if str(path) == source:
        return True
    try:
        return path.resolve() == Path(source).resolve()
    except (OSError, RuntimeError):  # a link loop: no file of ours
        return False


def _repeat(node: yaml.Node, pc: _Parse, line: int) -> RepeatStep:
    source = pc.source
    if isinstance(node, yaml.SequenceNode):
        return RepeatStep(_group(node, pc, "repeat:", line), line=line, source=source)
    if not isinstance(node, yaml.MappingNode):
        raise PipelineError(
            f"{source}:{line}: `repeat:` takes a list of passes or {{passes:, max_iterations:}}"
        )
    fields = _mapping(node, source)
    for key, (knode, _) in fields.items():
        if key not in ("passes", "max_iterations"):
            raise PipelineError(
                f"{source}:{_line(knode)}: unknown key {key!r} in repeat; valid: max_iterations, passes"
            )
    if "passes" not in fields:
        raise PipelineError(f"{source}:{line}: `repeat:` needs a `passes:` list")
    iterations = (
        _scalar(fields["max_iterations"][1], source, int, "max_iterations")
        if "max_iterations" in fields
        else 8
    )
    if iterations < 1:
        raise PipelineError(f"{source}:{line}: max_iterations must be at least 1")
    if iterations > MAX_ITERATIONS:
        raise PipelineError(
            f"{source}:{line}: max_iterations must be at most {MAX_ITERATIONS}, got "
            f"{iterations}: a group still changing the graph after that many rounds does not "
            "settle (rules that undo each other?), and one that settles stops on its own"
        )
    return RepeatStep(_group(fields["passes"][1], pc, "repeat:", line), iterations, line, source)


def _group(node: yaml.Node, pc: _Parse, key: str, line: int) -> list[Step]:
    """The steps of a `repeat:` or `if_changed:` group; one that holds no pass (`[]`, or
    includes of pipelines without passes) is an error: it would run nothing, silently. A
    group that holds the list it is in (a YAML alias of an anchor around it) is an error: it
    was a RecursionError."""
    if id(node) in pc.open_lists:
        raise PipelineError(
            f"{pc.source}:{line}: `{key}` holds the list it is in (an alias of an anchor "
            "around it): a group cannot contain itself; write its steps out"
        )
    _refuse_deeper(pc, line, f"`{key}`")
    pc.depth += 1
    try:
        steps = _steps(node, pc)
    finally:
        pc.depth -= 1
    if not Pipeline(key, steps).pass_steps():
        raise PipelineError(
            f"{pc.source}:{line}: `{key}` holds no pass; give it at least one or remove it"
        )
    return steps


def _count_step(pc: _Parse, line: int) -> None:
    """Count a pass step about to be made at `line`; a `PipelineError` past `MAX_PASS_STEPS`."""
    pc.made[0] += 1
    if pc.made[0] > MAX_PASS_STEPS:
        raise PipelineError(
            f"{pc.source}:{line}: the pipeline makes more than {MAX_PASS_STEPS} pass steps "
            "(groups given by alias, or files included, inside each other many times?); "
            "write a smaller one"
        )


def _refuse_deeper(pc: _Parse, line: int, what: str) -> None:
    """A `PipelineError` when `what` (a group or an include at `line`) would nest deeper than
    `MAX_NESTING`."""
    if pc.depth >= MAX_NESTING:
        raise PipelineError(
            f"{pc.source}:{line}: {what} nested more than {MAX_NESTING} deep (groups and "
            "includes together); flatten the pipeline"
        )


def _make_pass(
    name: str,
    options: dict[str, tuple[int, Any]],
    source: str,
    line: int,
    registry: dict[str, type[Pass]],
) -> Pass:
    cls = registry.get(name)
    if cls is None:
        raise PipelineError(
            f"{source}:{line}: unknown pass {name!r}; valid passes: {', '.join(sorted(registry))}"
        )
    valid = pass_options(cls)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for opt, (oline, value) in options.items():
        if opt not in valid:
            choices = ", ".join(sorted(valid)) or "(none)"
            raise PipelineError(
                f"{source}:{oline}: pass {name!r} has no option {opt!r}; valid options: {choices}"
            )
        expected = hints.get(opt, Any)
        if not _is_instance(value, expected):
            raise PipelineError(
                f"{source}:{oline}: option {opt!r} of pass {name!r} must be {_type_name(expected)}, got {_brief(value)}"
            )
        kwargs[opt] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        # an option's own check ("block_size must be ...") names the option's line, as the
        # type check above does (a block-style option sits below the pass's line)
        text = str(e)
        at = next((o for o, _ in options.items() if re.match(rf"{re.escape(o)}\b", text)), None)
        where = options[at][0] if at is not None else line
        raise PipelineError(f"{source}:{where}: pass {name!r}: {e}") from e


def _is_instance(value: Any, expected: Any) -> bool:
    if expected is Any:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, a) for a in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(expected)
        return isinstance(value, list) and (
            not args or all(_is_instance(v, args[0]) for v in value)
        )
    if origin is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True


def _brief(value: Any) -> str:
    """`repr(value)` cut short (`reprlib`: a few items per list, a few levels): an option's value
    built of YAML aliases (`[*b, *b, ...]`, each *b nine *a, ...) is small in the file and
    shared in memory, but its full repr is exponentially long (a 1 KB pipeline: a MemoryError
    while the error message was written)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict = 2, 6, 6
    short.maxstring = short.maxother = 80
    return short.repr(value)


def _type_name(expected: Any) -> str:
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")


# ---------------------------------------------------------------------------- running


@dataclass
class PassRecord:
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    changed: bool
    stats: dict[str, int]


@dataclass
class RunReport:
    """Per-pass timing and counts of one pipeline run (filled by `StatsInstrument`)."""

    pipeline: str
    records: list[PassRecord] = field(default_factory=list)
    seconds: float = 0.0
    explain: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # (rule, node, outcome, reason)
    # "file:line" of each `repeat:` group run that stopped at its max_iterations while its
    # passes still changed the graph (no fixed point reached; `PassManager` warns)
    capped_repeats: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, dict[str, int]]:
        """Per pass name: summed stats, runs, and nodes removed."""
        out: dict[str, dict[str, int]] = {}
        for r in self.records:
            entry = out.setdefault(r.name, {"runs": 0, "nodes_removed": 0})
            entry["runs"] += 1
            entry["nodes_removed"] += r.nodes_before - r.nodes_after
            for k, v in r.stats.items():
                entry[k] = entry.get(k, 0) + v
        return out

    def seconds_by_pass(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.records:
            out[r.name] = out.get(r.name, 0.0) + r.seconds
        return out


def nodes_that_run(graph: Graph) -> int:
    """The nodes of `graph` as `graphopt optimize` counts them: for a model that
    `ort-nchwc-layout: {fallback: true}` guarded (its NCHWc graph and its NCHW fallback behind
    an If on the block size), the NCHWc graph's; else `len(graph)`. Counted by the guard's 5
    top-level nodes, --stats said the layout pass removed nearly every node of a model whose
    NCHWc graph it had grown."""
    from graphopt.passes import nchwc_fallback

    if len(graph) != nchwc_fallback.GUARD_NODES:
        return len(graph)
    view = types.SimpleNamespace(
        graph=types.SimpleNamespace(node=graph.toposort()),
        metadata_props=graph.model.metadata_props,
    )
    guarded = nchwc_fallback.branches(view)  # type: ignore[arg-type]
    return len(graph) if guarded is None else len(guarded[0].node)


class StatsInstrument:
    """Times every pass and records node counts and the pass's own stats."""

    def __init__(self, report: RunReport):
        self.report = report
        self._start = 0.0
        self._nodes = 0

    def before_pass(self, pass_: Pass, graph: Graph, ctx: PassContext) -> None:
        self._nodes = nodes_that_run(graph)
        if isinstance(pass_, ConstantsToInitializers):  # the nodes converted while indexing
            self._nodes += graph.adopted_constants
        self._start = time.perf_counter()

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        elapsed = time.perf_counter() - self._start
        self.report.records.append(
            PassRecord(
                pass_.name,
                elapsed,
                self._nodes,
                nodes_that_run(graph),
                result.changed,
                dict(result.stats),
            )
        )

    def mark(self) -> int:
        return len(self.report.records)

    def retract(self, mark: int) -> None:
        """Forget the records since `mark`: a body's rewrites that were undone (its time then
        counts outside the passes)."""
        del self.report.records[mark:]


class VerifyInstrument:
    """Runs `onnx.checker` (full check) after every pass that changed the graph, and names
    the pass whose output fails it. An input model that fails it already is checked first
    (`start`): a pass is blamed only for an error the input did not have."""

    def __init__(self) -> None:
        self._started = False
        self._known: str | None = None  # the error the model had before the last check

    def start(self, graph: Graph) -> None:
        """Check the model the passes start from (once; PassManager.run calls it)."""
        if self._started:
            return
        self._started = True
        self._known = _checker_error(graph.snapshot())
        if self._known is not None:
            log.warning(
                "the input model fails onnx.checker already (%s): --verify-each names only "
                "a pass that makes another error",
                self._known,
            )

    def before_pass(self, pass_: Pass, graph: Graph, ctx: PassContext) -> None:
        pass

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        if not result.changed:
            return
        error = _checker_error(graph.snapshot())  # a commit would reorder the nodes passes meet
        known, self._known = self._known, error
        if error is None or error == known:  # the input's own error is no pass's
            return
        raise VerifyError(
            f"after pass {pass_.name}: the model no longer passes onnx.checker: {error}"
            if known is None
            else f"after pass {pass_.name}: the model fails onnx.checker with a new error: "
            f"{error} (before it: {known})"
        )


def _checker_error(model: onnx.ModelProto) -> str | None:
    """The first line of `onnx.checker.check_model(model, full_check=True)`'s error, or None.
    (A ValueError is the checker's too: its C++ code raises one for a tensor of an element type
    it does not know, "Invalid tensor data type 99.", which came out as a traceback.)"""
    try:
        full_check(model)
    except CHECKER_ERRORS as e:
        return first_line(e)
    return None


_DUMP_NAME = re.compile(r"[0-9]{2,}-.*\.onnx")


def refuse_earlier_dumps(directory: Path, named: str) -> None:
    """A `SaveError` ("`named`: holds the dumps of an earlier run ...") when the folder
    `directory` holds dumps (`<NN>-<pass>.onnx`, `DumpInstrument`'s names): an earlier run's
    dumps past this run's last would read as this run's. An OSError where it cannot be listed."""
    earlier = sorted(p.name for p in directory.iterdir() if _DUMP_NAME.fullmatch(p.name))
    if earlier:
        raise SaveError(
            f"{named}: holds the dumps of an earlier run ({earlier[0]}, ...); "
            "give an empty or new folder"
        )


class DumpInstrument:
    """Writes the model after every pass that changed it to `<dir>/<NN>-<pass>.onnx` (a pass
    name's characters other than letters, digits, '.', '_' and '-' as '_': a '/' would name a
    folder). NN has two digits, or as many as the count needs: the 100th dump renames the
    earlier ones 001-..., so that the names sort in the order they were written (an external
    data file keeps its first name, which its model refers to). A folder that holds such dumps
    already is refused: an earlier run's dumps past this run's last would read as this run's."""

    def __init__(self, directory: str | Path):
        if not str(directory):  # Path("") is the current folder
            raise SaveError("the dump folder is an empty path; name a folder")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            refuse_earlier_dumps(self.directory, str(directory))
        except OSError as e:
            raise SaveError(f"{directory}: cannot make the dump folder: {e.strerror or e}") from e
        self.count = 0
        self.width = 2  # digits of the dumps' numbers
        self.written: list[str] = []  # the dumps' names, numbers cut: "-pass.onnx"

    def before_pass(self, pass_: Pass, graph: Graph, ctx: PassContext) -> None:
        pass

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        if result.changed:
            from graphopt.ir import save_model

            self.count += 1
            if len(str(self.count)) > self.width:
                self._widen(len(str(self.count)))
            name = "-" + re.sub(r"[^A-Za-z0-9._-]", "_", pass_.name) + ".onnx"
            save_model(graph.snapshot(), self.directory / self._name(self.count, name))
            self.written.append(name)

    def _name(self, number: int, rest: str) -> str:
        return f"{number:0{self.width}d}{rest}"

    def _widen(self, width: int) -> None:
        """Rename the dumps so far to `width` digits."""
        old = [self._name(i, rest) for i, rest in enumerate(self.written, 1)]
        self.width = width
        for i, (before, rest) in enumerate(zip(old, self.written, strict=True), 1):
            try:
                os.replace(self.directory / before, self.directory / self._name(i, rest))
            except OSError as e:
                raise SaveError(
                    f"{self.directory / before}: cannot rename the dump: {e.strerror or e}"
                ) from e


class OptimizeBodies(Pass):
    """Not a registered pass: the step of `PassManager.run` that runs the pipeline over the
    If/Loop/Scan bodies (`graphopt.subgraphs`), as the verify and dump instruments name it."""

    name = "optimize-bodies"


_BODIES_STEP = OptimizeBodies()
_MODEL_INSTRUMENTS = (DumpInstrument, VerifyInstrument)


class PassManager:
    """Runs a pipeline's steps over a graph, calling the context's instruments around each pass."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        """Run the pipeline over `graph`: first over the If/Loop/Scan bodies it holds, each as
        a model of its own (`graphopt.subgraphs`; not with the option `subgraphs=False`), then
        over the graph itself."""
        if self.pipeline.opt_level is not None and "opt_level" not in ctx.options:
            ctx.opt_level = self.pipeline.opt_level
        for inst in ctx.instruments:
            if isinstance(inst, VerifyInstrument):  # a body's context holds none
                inst.start(graph)
        bodies = False
        if ctx.options.get("subgraphs", True):
            # A body run as a model of its own is no model to dump or check: its graph inputs
            # and outputs are its owner's (onnx.checker wants shapes on a model's, not on a
            # body's). Those instruments see the model once its bodies are back in place.
            whole = [i for i in ctx.instruments if isinstance(i, _MODEL_INSTRUMENTS)]
            watching = [i for i in ctx.instruments if not isinstance(i, _MODEL_INSTRUMENTS)]
            bodies = optimize_bodies(graph, ctx, self.run, watching)
            if bodies:
                ctx.invalidate()
                for inst in whole:
                    inst.after_pass(_BODIES_STEP, graph, ctx, PassResult(True))
        return self._run_steps(self.pipeline.steps, graph, ctx) or bodies

    def _run_steps(self, steps: Sequence[Step], graph: Graph, ctx: PassContext) -> bool:
        changes: list[bool] = []  # whether each step so far changed the graph
        for step in steps:
            if isinstance(step, PassStep):
                last = self._run_pass(step.pass_, graph, ctx, level_of(step, ctx.opt_level, ctx))
            elif isinstance(step, IfChangedStep):
                # the step before: an include:'s are all the steps it made
                last = any(changes[-step.watch :]) and self._run_steps(step.steps, graph, ctx)
            else:
                last = False
                for _ in range(step.max_iterations):
                    if not self._run_steps(step.steps, graph, ctx):
                        break
                    last = True
                else:  # every iteration changed the graph: stopped by the cap
                    self._capped(step, ctx)
            changes.append(last)
        return any(changes)

    def _capped(self, step: RepeatStep, ctx: PassContext) -> None:
        """Say (a warning, and in the run's report) that `step` stopped at its max_iterations
        with its last iteration still changing the graph: the result may not be as optimized
        as the group would make it (it was said only at -v)."""
        where = f"{step.source or self.pipeline.source}:{step.line}"
        log.warning(
            "%s: `repeat:` stopped at max_iterations: %d while its passes still changed the "
            "graph (no fixed point reached); a higher max_iterations may optimize further",
            where,
            step.max_iterations,
        )
        for inst in ctx.instruments:
            if isinstance(inst, StatsInstrument):
                inst.report.capped_repeats.append(where)

    def _run_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, level: int) -> bool:
        if pass_.name in ctx.disabled or pass_.opt_level > level:
            return False
        if ctx.in_body and not pass_.in_bodies:
            return False
        for inst in ctx.instruments:
            inst.before_pass(pass_, graph, ctx)
        try:
            result = pass_.run(graph, ctx)
        except GraphoptError:
            raise
        except Exception as e:  # a bug in a pass must still name the pass, and the node
            node = _node_being_rewritten(e)
            # one line: onnx's and numpy's messages run to many (the CLI printed them all)
            text = f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__
            raise PassError(
                text,
                pass_name=pass_.name,
                node=node.name if node is not None else "",
                op=node.op_type if node is not None else "",
            ) from e
        if not isinstance(result, PassResult):  # (`result.changed` was an AttributeError)
            raise PassError(
                f"returned {_brief(result)}, not a PassResult(changed, stats)",
                pass_name=pass_.name,
            )
        if result.changed:
            ctx.invalidate()
        for inst in ctx.instruments:
            inst.after_pass(pass_, graph, ctx, result)
        return result.changed


def check_opt_level(level: int, where: str = "opt_level") -> None:
    """A `PipelineError` for an opt level outside -1 (run no pass) to the highest pass level
    (2): 3 ran what 2 runs, -2 what -1 runs, without a word."""
    top = max(p.opt_level for p in all_passes().values())
    if not -1 <= level <= top:
        raise PipelineError(
            f"{where} must be -1 to {top}, got {level} (a pass runs at a level from its own, "
            f"0 to {top}; -1 runs no pass)"
        )


def level_of(step: PassStep, level: int, ctx: PassContext) -> int:
    """The opt level `step` runs at when its pipeline runs at `level`: the lower of it and the
    `opt_level:` of the pipelines that included the step (`PassStep.max_level`), unless the
    user gave a level (`opt_level` in the context's options), which wins over every
    pipeline's."""
    if step.max_level is None or "opt_level" in ctx.options:
        return level
    return min(level, step.max_level)


def _node_being_rewritten(error: BaseException) -> onnx.NodeProto | None:
    """The NodeProto a failing pass was working on: the innermost frame of the traceback that
    holds one in a local named `node` (the name every pass's loop uses). Best effort: None when
    no frame has one."""
    found = None
    tb = error.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("node")
        if isinstance(candidate, onnx.NodeProto):
            found = candidate
        tb = tb.tb_next
    return found


def make_pipeline(name: str, passes: Sequence[str | Pass]) -> Pipeline:
    """Build a pipeline in code: pass names (default options) or pass instances."""
    registry = all_passes()
    steps: list[Step] = []
    for p in passes:
        if isinstance(p, Pass):
            steps.append(PassStep(p))
        elif p in registry:
            steps.append(PassStep(registry[p]()))
        else:
            raise PipelineError(f"unknown pass {p!r}; valid passes: {', '.join(sorted(registry))}")
    return Pipeline(name, steps)


def describe_pass(cls: type[Pass]) -> str:
    """One line: name, options with defaults, first docstring line."""
    opts = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        default = f.default if f.default is not dataclasses.MISSING else "..."
        opts.append(f"{f.name}={default!r}")
    doc = (cls.__doc__ or "").strip().splitlines()
    return f"{cls.name}({', '.join(opts)}): {doc[0] if doc else ''}"
