"""Rule files: the declarative rule format, its parser and validator.

A rule file is YAML with a `rules:` list (and optional `macros:`). Each rule has a `name`, a
`group` (pipelines select rules by group), a `doc` (the rewrite as math), a `target`, a
`replacement`, optional `checks` and an optional `compute`:

    macros:
      Relu6(a): ["Clip(a, 0, 6)", "Min(Relu(a), 6)"]
    rules:
      - name: hardswish
        group: activations
        doc: x·relu6(x+3)/6 ⇒ HardSwish(x)
        target: y = Div(Mul(x, Relu6(Add(x, 3))), 6)
        replacement: y = HardSwish(x)

Target and replacement are small programs in a Python-shaped op syntax, one statement a line:
`out = Op(inputs, attr=value)`, nested calls allowed (`Div(Mul(x, c), 6)`), `domain.Op` for
other domains, `a, b = Op(...)` for several outputs.

Inputs of a target: a name (a variable; the same name twice must be the same tensor), a number
or `approx(v, rtol)` (a floating-point constant of one element equal to v), `optional(B)` (present or absent),
`None` (must be absent). Attributes of a target: `k=literal` constrains the attribute (floats with
tolerance, or `k=approx(v, rtol)`; an absent attribute takes the schema default), `k=name`
captures its value.

Inputs of a replacement: target variables, names produced by `compute`, new intermediates and
`None` (an input left out). It may read a target intermediate only when `multi_use` lists it.
Attributes: literals, captured names (or a scalar constant bound to a tensor variable), and
`**attrs_of(v)` to copy every attribute of the target node that produced `v`.

`checks` is a list of calls of named checks (`graphopt.patterns.checks`), `compute` a call of a
named computation (`graphopt.patterns.compute`): `W2, B2 = fold_batchnorm_conv(W, B, ...)`.

A `target` may be a list: alternatives sharing replacement and checks. Every error is a
`PipelineError` naming the file and line. This module does not match or rewrite anything.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import itertools
import math
import operator
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphopt._text import not_utf8
from graphopt.errors import PipelineError

try:  # libyaml is ~10x faster than the pure-Python composer
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

DEFAULT_RTOL = 1e-5


# ---------------------------------------------------------------------------- the rule IR


@dataclass(frozen=True)
class Var:
    """A named tensor: bound on first use in a target, compared on later uses."""

    name: str
    optional: bool = False


@dataclass(frozen=True)
class Literal:
    """A constant tensor of one element whose value is `value` (within `rtol`)."""

    value: float
    rtol: float = DEFAULT_RTOL


@dataclass(frozen=True)
class Absent:
    """An input that must be missing (empty name or past the node's last input)."""


Operand = Var | Literal | Absent


@dataclass(frozen=True)
class AttrRef:
    """An attribute given by a name: captured in a target, referenced in a replacement."""

    name: str


@dataclass
class PatternNode:
    op: str
    domain: str
    inputs: list[Operand]
    outputs: list[str]
    attrs: dict[str, Any]  # name -> literal value or AttrRef
    copy_attrs_from: str | None = None  # replacement only: variable whose producer's attrs
    line: int = 0


@dataclass
class Pattern:
    """A DAG of pattern nodes in topological order; the last node's first output is the root."""

    nodes: list[PatternNode]
    line: int = 0

    @property
    def root(self) -> PatternNode:
        return self.nodes[-1]

    @property
    def output(self) -> str:
        return self.root.outputs[0]

    def producers(self) -> dict[str, int]:
        """Variable name → index of the pattern node producing it (cached)."""
        cached = self.__dict__.get("_producers")
        if cached is None:
            cached = {out: i for i, n in enumerate(self.nodes) for out in n.outputs}
            self.__dict__["_producers"] = cached
        return cached


@dataclass
class Call:
    """`outputs = name(args)`: a check or computation call, arguments are variable names or
    literals."""

    name: str
    args: list[Any]
    outputs: list[str] = field(default_factory=list)
    line: int = 0


@dataclass
class Rule:
    name: str
    group: str
    doc: str
    targets: list[Pattern]
    replacement: Pattern
    checks: list[Call] = field(default_factory=list)
    compute: Call | None = None
    multi_use: set[str] = field(default_factory=set)
    source: str = "<string>"
    line: int = 0
    # the replacement is itself a match of a target (`y = Neg(t)` ⇒ three Negs): the runner
    # does not try the rule on the nodes it made, which it would rewrite again on every sweep
    rematches: bool = False

    @property
    def constant_vars(self) -> frozenset[str]:
        """Variables the rule's checks require to be constants (a prefilter for the matcher)."""
        cached = self.__dict__.get("_constant_vars")
        if cached is None:
            names = {
                a.name
                for c in self.checks
                if c.name in ("constant", "float_constant", "scalar")
                for a in c.args
                if isinstance(a, Var)
            }
            cached = frozenset(names)
            self.__dict__["_constant_vars"] = cached
        return cached

    @property
    def anchor_ops(self) -> set[tuple[str, str]]:
        return {(t.root.domain, t.root.op) for t in self.targets}

    def where(self) -> str:
        return f"{self.source}:{self.line}"


# ---------------------------------------------------------------------------- loading


def load_rule_file(path: str | Path) -> list[Rule]:
    """Parse and validate a rule file (cached by path and modification time). A user's file
    (not one of the built-in `patterns/`) also has its default-domain op and attribute names
    checked against ONNX's schemas (`parse_rules(..., onnx_names=True)`)."""
    p = Path(path)
    try:
        status = p.stat()
    except OSError as e:
        raise PipelineError(f"{p}: cannot read rule file: {e}") from e
    # (a pipeline's `rules:` refuses these; `optimize(rule_files=)` read a FIFO: it blocked)
    if stat.S_ISDIR(status.st_mode):
        raise PipelineError(f"{p}: is a folder, not a rule file")
    if not stat.S_ISREG(status.st_mode):
        raise PipelineError(f"{p}: is not a regular file (a pipe or a device); give a rule file")
    return list(_load_cached(str(p), status.st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, stamp: int) -> tuple[Rule, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")  # YAML is UTF-8
    except UnicodeDecodeError as e:  # ("can't decode byte 0xff in position 32": no line)
        raise PipelineError(f"{path}:{not_utf8(e)}") from e
    except OSError as e:
        raise PipelineError(f"{path}: cannot read rule file: {e}") from e
    from graphopt._resources import builtin_dir

    # the built-in files are checked by their tests; reading ONNX's schemas costs ~16 ms
    user = Path(path).resolve().parent != builtin_dir("patterns").resolve()
    return tuple(parse_rules(text, path, onnx_names=user, trusted=not user))


def _fields(node: yaml.MappingNode, source: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node's keys → (key node, value node); a key given twice is an error (YAML
    would keep the last one, and a second `target:` silently replaced the first)."""
    fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        key = str(k.value)
        if key in fields:
            raise PipelineError(
                f"{source}:{_line(k)}: key {key!r} is given twice (first at line {_line(fields[key][0])})"
            )
        fields[key] = (k, v)
    return fields


def parse_rules(
    text: str, source: str = "<string>", onnx_names: bool = False, *, trusted: bool = False
) -> list[Rule]:
    """Parse a rule file's text; errors name `source` and the line. `onnx_names`: every
    default-domain op must be an ONNX op and every attribute one of its attributes (in some
    opset): a misspelt op or attribute in a target otherwise never matches, without a word.
    `trusted` (the built-in files): their nesting is not checked (`_refuse_deep_nesting`)."""
    try:
        if not trusted:
            _refuse_deep_nesting(text, source)
        root = yaml.compose(text, Loader=_Loader)
    except yaml.reader.ReaderError as e:  # a control character: a position, no mark
        line = text.count("\n", 0, e.position) + 1
        # (its text ran on to a second line: 'in "<unicode string>", position 58')
        raise PipelineError(f"{source}:{line}: invalid YAML: {str(e).splitlines()[0]}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise PipelineError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from e
    if root is None or not isinstance(root, yaml.MappingNode):
        raise PipelineError(f"{source}:1: a rule file is a mapping with a `rules:` list")
    top = _fields(root, source)
    for key, (knode, _) in top.items():
        if key not in ("rules", "macros"):
            raise PipelineError(
                f"{source}:{_line(knode)}: unknown key {key!r}; valid keys: macros, rules"
            )
    macros = _macros(top["macros"][1], source) if "macros" in top else {}
    if "rules" not in top or not isinstance(top["rules"][1], yaml.SequenceNode):
        raise PipelineError(f"{source}:{_line(root)}: missing `rules:` list")
    rules = [_rule(item, source, macros) for item in top["rules"][1].value]
    if onnx_names:
        for r in rules:
            _check_onnx_names(r)
    seen: dict[str, int] = {}
    for r in rules:
        if r.name in seen:
            raise PipelineError(
                f"{source}:{r.line}: duplicate rule name {r.name!r} (first at line {seen[r.name]})"
            )
        seen[r.name] = r.line
    return rules


# Collections one inside another a rule file may nest (the built-in files: 4).
MAX_YAML_NESTING = 100


def _refuse_deep_nesting(text: str, source: str) -> None:
    """A `PipelineError` where `text`'s YAML collections nest more than `MAX_YAML_NESTING`
    deep. libyaml's composer recurses in C, with no recursion limit: a file of 100 000 `[`
    crashed the process (a segmentation fault). Its parser's events come without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_NESTING:
                mark = event.start_mark
                line = f":{mark.line + 1}" if mark is not None else ""
                raise PipelineError(
                    f"{source}{line}: invalid YAML: collections nested "
                    f"more than {MAX_YAML_NESTING} deep"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


# Alternatives one rule's target may expand to (the built-in rules need at most 21), and
# nodes one target may have (they need at most 9).
_MAX_ALTERNATIVES = 256
_MAX_TARGET_NODES = 64

RULE_KEYS = {"name", "group", "doc", "target", "replacement", "checks", "compute", "multi_use"}


def _rule(node: yaml.Node, source: str, macros: dict[str, Macro]) -> Rule:
    line = _line(node)
    if not isinstance(node, yaml.MappingNode):
        raise PipelineError(f"{source}:{line}: each rule is a mapping (name, target, ...)")
    fields = _fields(node, source)
    for key, (knode, _) in fields.items():
        if key not in RULE_KEYS:
            raise PipelineError(
                f"{source}:{_line(knode)}: unknown rule key {key!r}; valid keys: {', '.join(sorted(RULE_KEYS))}"
            )
    for key in ("name", "target", "replacement"):
        if key not in fields:
            raise PipelineError(f"{source}:{line}: rule needs a `{key}:`")
    name = _text(fields["name"][1], source)
    if not name.strip():
        raise PipelineError(f"{source}:{_line(fields['name'][1])}: a rule's name cannot be empty")
    group = _text(fields["group"][1], source) if "group" in fields else "user"
    doc = _text(fields["doc"][1], source) if "doc" in fields else ""
    tnode = fields["target"][1]
    tnodes = tnode.value if isinstance(tnode, yaml.SequenceNode) else [tnode]
    targets: list[Pattern] = []
    for t in tnodes:
        for expanded in _expand_macros(_text(t, source), macros, source, _body_line(t)):
            targets.append(_pattern(expanded, source, _body_line(t), target=True))
            if len(targets) > _MAX_ALTERNATIVES:
                # each call of an n-body macro multiplies the count by n: eight nested calls
                # of a three-body macro were 6561 targets, ten a load of minutes
                raise PipelineError(
                    f"{source}:{_body_line(t)}: the target expands to more than "
                    f"{_MAX_ALTERNATIVES} alternatives (each call of a macro multiplies them by "
                    "its number of bodies); split the rule"
                )
    rnode = fields["replacement"][1]
    replacement = _pattern(_text(rnode, source), source, _body_line(rnode), target=False)
    checks = [_check_call(c, fields["checks"][1], source) for c in _seq(fields, "checks", source)]
    compute = None
    if "compute" in fields:
        cnode = fields["compute"][1]
        compute = _call(_text(cnode, source), source, _body_line(cnode), allow_outputs=True)
    multi_use = {_text(m, source) for m in _seq(fields, "multi_use", source)}
    rule = Rule(name, group, doc, targets, replacement, checks, compute, multi_use, source, line)
    _validate(rule)
    return rule


def _check_call(item: yaml.Node, seq: yaml.Node, source: str) -> Call:
    text = _text(item, source)
    if getattr(seq, "flow_style", False) and text.count("(") != text.count(")"):
        # `checks: [scalar(a, b)]`: YAML's flow list splits the call at its comma
        raise PipelineError(
            f"{source}:{_line(item)}: cannot parse {text.strip()!r}: a `[...]` list splits a "
            "call at its commas; write one `- call(...)` a line, or quote each call"
        )
    return _call(text, source, _line(item))


def _seq(fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str, source: str) -> list[yaml.Node]:
    if key not in fields:
        return []
    node = fields[key][1]
    if not isinstance(node, yaml.SequenceNode):
        raise PipelineError(f"{source}:{_line(node)}: `{key}:` must be a list")
    return list(node.value)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _body_line(node: yaml.Node) -> int:
    """Line of the first statement of a scalar: block scalars (`|`) start on the next line."""
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        return _line(node) + 1
    return _line(node)


def _text(node: yaml.Node, source: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise PipelineError(f"{source}:{_line(node)}: expected text here")
    return str(node.value)


# ---------------------------------------------------------------------------- macros


@dataclass
class Macro:
    params: list[str]
    bodies: list[ast.expr]


def _macros(node: yaml.Node, source: str) -> dict[str, Macro]:
    if not isinstance(node, yaml.MappingNode):
        raise PipelineError(f"{source}:{_line(node)}: `macros:` maps `Name(params)` to a list")
    out: dict[str, Macro] = {}
    for k, v in node.value:
        head = _parse_expr(k.value, source, _line(k))
        if not isinstance(head, ast.Call) or not isinstance(head.func, ast.Name):
            raise PipelineError(f"{source}:{_line(k)}: a macro is declared as `Name(a, b)`")
        params = []
        for a in head.args:
            if not isinstance(a, ast.Name):
                raise PipelineError(f"{source}:{_line(k)}: macro parameters are plain names")
            if a.id in params:
                raise PipelineError(f"{source}:{_line(k)}: macro parameter {a.id!r} is given twice")
            params.append(a.id)
        items = v.value if isinstance(v, yaml.SequenceNode) else [v]
        bodies = [_parse_expr(_text(i, source), source, _line(i)) for i in items]
        out[head.func.id] = Macro(params, bodies)
    return out


def _parse_expr(text: str, source: str, line: int) -> ast.expr:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise PipelineError(f"{source}:{line}: cannot parse {text.strip()!r}: {e.msg}") from e


# Macro calls expanded one inside another at most this deep (a macro that calls itself never ends).
_MAX_MACRO_DEPTH = 64


def _expand_macros(
    text: str, macros: dict[str, Macro], source: str, line: int, depth: int = 0
) -> Iterator[str]:
    """Every alternative of `text` with each macro call replaced by one of its bodies."""
    if not macros or not any(m in text for m in macros):
        yield text
        return
    if depth > _MAX_MACRO_DEPTH:
        raise PipelineError(
            f"{source}:{line}: macro expansion goes deeper than {_MAX_MACRO_DEPTH} levels "
            "(does a macro call itself?)"
        )
    try:
        probe = ast.parse(_dedent(text))
    except SyntaxError as e:
        raise PipelineError(f"{source}:{line + (e.lineno or 1) - 1}: {e.msg}") from e
    site = _first_macro_call(probe, macros)
    if site is None:
        yield text
        return
    assert isinstance(site.func, ast.Name)
    macro = macros[site.func.id]
    if len(site.args) != len(macro.params):
        raise PipelineError(
            f"{source}:{line + site.lineno - 1}: macro {site.func.id} takes {len(macro.params)} arguments"
        )
    for body in macro.bodies:
        tree = ast.parse(_dedent(text))
        here = _first_macro_call(tree, macros)
        assert here is not None
        bound = dict(zip(macro.params, here.args, strict=True))
        replaced = _Substitute(bound).visit(_copy(body))
        expanded = _ReplaceNode(here, replaced).visit(tree)
        yield from _expand_macros(ast.unparse(expanded), macros, source, line, depth + 1)


def _first_macro_call(tree: ast.AST, macros: dict[str, Macro]) -> ast.Call | None:
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in macros:
            return n
    return None


def _copy(node: ast.expr) -> ast.expr:
    return ast.parse(ast.unparse(node), mode="eval").body


class _Substitute(ast.NodeTransformer):
    def __init__(self, bound: dict[str, ast.expr]):
        self.bound = bound

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return _copy(self.bound[node.id]) if node.id in self.bound else node


class _ReplaceNode(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.expr):
        self.target = target
        self.replacement = replacement

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return self.replacement
        return super().visit(node)


# ---------------------------------------------------------------------------- statements


def _dedent(text: str) -> str:
    lines = [ln.split("#", 1)[0].rstrip() if "#" in ln else ln.rstrip() for ln in text.splitlines()]
    return "\n".join(ln.strip() for ln in lines)


_NAMED_CONSTANTS = {"pi": math.pi, "e": math.e, "sqrt": math.sqrt, "inf": math.inf}
_LITERAL_NAMES = frozenset({"pi", "e", "inf"})  # numbers wherever they are read


def _literal_name_message(name: str) -> str:
    """A tensor named like a constant (`e = Exp(x)`): every read of it is the number."""
    return (
        f"{name!r} is the number {_NAMED_CONSTANTS[name]} where it is read; give the tensor "
        "another name"
    )


_ARITHMETIC: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def literal_value(node: ast.expr) -> Any:
    """Evaluate a literal (numbers, strings, lists, `1/6`, `sqrt(2)`, `pi`); ValueError if not."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [literal_value(e) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = literal_value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = literal_value(node.left), literal_value(node.right)
        # arithmetic on numbers only, in floating point: `[1] * 10**9` or `10**10**10` in a rule
        # file would otherwise build a huge list or integer (memory and time without end)
        if not (_is_number(a) and _is_number(b)):
            raise ValueError(ast.unparse(node))
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            raise ValueError(ast.unparse(node))
        try:
            result = op(float(a), float(b))
        except (OverflowError, ZeroDivisionError) as e:
            raise ValueError(ast.unparse(node)) from e
        if not isinstance(result, float):  # (-8) ** (1/3) is complex
            raise ValueError(ast.unparse(node))
        exact = isinstance(a, int) and isinstance(b, int) and not isinstance(node.op, ast.Div)
        if exact and abs(result) < 2.0**63 and (b >= 0 or not isinstance(node.op, ast.Pow)):
            return op(a, b)  # exact integers stay integers (`kernel_shape=[2*2]`)
        return result
    if isinstance(node, ast.Name) and node.id in ("pi", "e", "inf"):
        return _NAMED_CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "sqrt"
        and len(node.args) == 1
    ):
        return math.sqrt(literal_value(node.args[0]))
    raise ValueError(ast.unparse(node))


def _fits_int64(v: Any) -> bool:
    """Every integer in `v` (a literal, or a list of them) fits an ONNX int64 attribute."""
    if isinstance(v, list):
        return all(_fits_int64(x) for x in v)
    return not isinstance(v, int) or -(2**63) <= v < 2**63


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_literal(node: ast.expr) -> bool:
    try:
        literal_value(node)
    except (ValueError, TypeError, ZeroDivisionError):
        return False
    return True


class _PatternBuilder:
    def __init__(self, source: str, first_line: int, target: bool):
        self.source = source
        self.first_line = first_line
        self.target = target
        self.nodes: list[PatternNode] = []
        self.counter = itertools.count()

    def error(self, lineno: int, message: str) -> PipelineError:
        return PipelineError(f"{self.source}:{self.first_line + lineno - 1}: {message}")

    def statement(self, stmt: ast.stmt) -> None:
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            raise self.error(stmt.lineno, "each line is `out = Op(inputs, attr=value)`")
        lhs = stmt.targets[0]
        names = lhs.elts if isinstance(lhs, ast.Tuple) else [lhs]
        outs = []
        for n in names:
            if not isinstance(n, ast.Name):
                raise self.error(stmt.lineno, "outputs are plain names")
            if n.id in _LITERAL_NAMES:
                raise self.error(stmt.lineno, _literal_name_message(n.id))
            outs.append(n.id)
        if not isinstance(stmt.value, ast.Call):
            raise self.error(stmt.lineno, "the right-hand side must be an op call")
        self.call(stmt.value, outs, stmt.lineno)

    def call(self, node: ast.Call, outputs: list[str] | None, lineno: int) -> str:
        op, domain = _op_name(node.func)
        if op is None:
            raise self.error(lineno, f"{ast.unparse(node.func)!r} is not an op name")
        inputs: list[Operand] = [self.operand(a, lineno) for a in node.args]
        attrs: dict[str, Any] = {}
        copy_from = None
        for kw in node.keywords:
            if kw.arg is None:
                v = kw.value
                if (
                    not self.target
                    and isinstance(v, ast.Call)
                    and isinstance(v.func, ast.Name)
                    and v.func.id == "attrs_of"
                    and len(v.args) == 1
                    and isinstance(v.args[0], ast.Name)
                ):
                    copy_from = v.args[0].id
                    continue
                raise self.error(lineno, "only `**attrs_of(var)` is allowed, in a replacement")
            if kw.arg in attrs:
                raise self.error(lineno, f"attribute {kw.arg}= is given twice")
            if isinstance(kw.value, ast.Name) and kw.value.id not in ("pi", "e", "inf"):
                attrs[kw.arg] = AttrRef(kw.value.id)
            elif (
                self.target
                and isinstance(kw.value, ast.Call)
                and isinstance(kw.value.func, ast.Name)
                and kw.value.func.id == "approx"
            ):
                # a float attribute within rtol (`min=approx(0, 0)`: exactly 0)
                attrs[kw.arg] = self._approx(kw.value, lineno)
            else:
                try:
                    attrs[kw.arg] = literal_value(kw.value)
                except (ValueError, TypeError, ZeroDivisionError) as e:
                    raise self.error(
                        lineno, f"attribute {kw.arg}= must be a literal or a name"
                    ) from e
                if not _fits_int64(attrs[kw.arg]):
                    # an ONNX attribute holds int64: the edit failed with a ValueError at a match
                    raise self.error(
                        lineno, f"attribute {kw.arg}= holds an integer outside int64's range"
                    )
        if outputs is None:
            outputs = [f"_t{next(self.counter)}"]
        self.nodes.append(PatternNode(op, domain, inputs, outputs, attrs, copy_from, lineno))
        return outputs[0]

    def _literal(self, value: float, rtol: float, lineno: int) -> Literal:
        if math.isnan(value):  # `inf - inf`: NaN equals no constant, the rule never applied
            raise self.error(lineno, "a constant input is NaN, which matches no constant")
        return Literal(value, rtol)

    def _approx(self, a: ast.Call, lineno: int) -> Literal:
        """`approx(value, rtol)` of a target, an input or a float attribute."""
        if len(a.args) != 2:
            raise self.error(lineno, "`approx(value, rtol)` takes two numbers")
        try:
            value, rtol = (literal_value(v) for v in a.args)
        except (ValueError, TypeError, ZeroDivisionError) as e:
            raise self.error(lineno, "`approx(value, rtol)` takes two numbers") from e
        if not (_is_number(value) and _is_number(rtol)):
            raise self.error(lineno, "`approx(value, rtol)` takes two numbers")
        if not 0 <= rtol < math.inf:  # an infinite rtol took every constant
            raise self.error(lineno, f"`approx(value, rtol)`: rtol {rtol!r} is not >= 0 and finite")
        return self._literal(float(value), float(rtol), lineno)

    def operand(self, a: ast.expr, lineno: int) -> Operand:
        if isinstance(a, ast.Constant) and a.value is None:
            return Absent()
        if isinstance(a, ast.Name) and a.id not in ("pi", "e", "inf"):
            return Var(a.id)
        if isinstance(a, ast.Call) and isinstance(a.func, ast.Name):
            fname = a.func.id
            if fname == "optional":
                if not self.target or len(a.args) != 1 or not isinstance(a.args[0], ast.Name):
                    raise self.error(lineno, "`optional(name)` takes one name, in a target")
                return Var(a.args[0].id, optional=True)
            if fname == "approx":
                if not self.target:
                    raise self.error(lineno, "`approx(value, rtol)` takes two numbers")
                return self._approx(a, lineno)
        if _is_literal(a):
            if not self.target and isinstance(a, ast.Name) and a.id in _LITERAL_NAMES:
                # a compute output named so, or the number meant: neither can be read here
                raise self.error(
                    lineno,
                    _literal_name_message(a.id)
                    + " (a replacement cannot create constants from literals; use `compute:`)",
                )
            if not self.target:
                raise self.error(
                    lineno, "a replacement cannot create constants from literals; use `compute:`"
                )
            value = literal_value(a)
            if not isinstance(value, int | float):
                raise self.error(lineno, f"a constant input must be a number, got {value!r}")
            return self._literal(float(value), DEFAULT_RTOL, lineno)
        if isinstance(a, ast.Call):
            return Var(self.call(a, None, lineno))
        raise self.error(lineno, f"cannot use {ast.unparse(a)!r} as an input")


def _op_name(func: ast.expr) -> tuple[str | None, str]:
    if isinstance(func, ast.Name):
        return func.id, ""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None, ""
    parts.append(func.id)
    parts.reverse()
    domain = ".".join(parts[:-1])
    return parts[-1], "" if domain in ("ai.onnx", "onnx") else domain


def _pattern(text: str, source: str, first_line: int, *, target: bool) -> Pattern:
    body = _dedent(text)
    try:
        tree = ast.parse(body)
    except SyntaxError as e:
        raise PipelineError(f"{source}:{first_line + (e.lineno or 1) - 1}: {e.msg}") from e
    if not tree.body:
        raise PipelineError(f"{source}:{first_line}: empty pattern")
    builder = _PatternBuilder(source, first_line, target)
    for stmt in tree.body:
        builder.statement(stmt)
    return Pattern(builder.nodes, first_line)


def _call(text: str, source: str, line: int, allow_outputs: bool = False) -> Call:
    text = text.strip()
    outputs: list[str] = []
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise PipelineError(f"{source}:{line}: cannot parse {text!r}: {e.msg}") from e
    stmt = tree.body[0] if len(tree.body) == 1 else None
    if isinstance(stmt, ast.Assign) and allow_outputs:
        lhs = stmt.targets[0]
        for n in lhs.elts if isinstance(lhs, ast.Tuple) else [lhs]:
            if not isinstance(n, ast.Name):
                raise PipelineError(f"{source}:{line}: outputs of a computation are names")
            if n.id in _LITERAL_NAMES:
                raise PipelineError(f"{source}:{line}: {_literal_name_message(n.id)}")
            outputs.append(n.id)
        expr: ast.expr | None = stmt.value
    elif isinstance(stmt, ast.Expr):
        expr = stmt.value
    else:
        expr = None
    if not isinstance(expr, ast.Call) or not isinstance(expr.func, ast.Name) or expr.keywords:
        what = "`a, b = name(args)`" if allow_outputs else "`name(args)`"
        raise PipelineError(f"{source}:{line}: expected {what}, got {text!r}")
    args: list[Any] = []
    for a in expr.args:
        if isinstance(a, ast.Name) and a.id not in ("pi", "e", "inf"):
            args.append(Var(a.id))
        else:
            try:
                args.append(literal_value(a))
            except (ValueError, TypeError, ZeroDivisionError) as e:
                raise PipelineError(
                    f"{source}:{line}: argument {ast.unparse(a)!r} is neither a name nor a literal"
                ) from e
    return Call(expr.func.id, args, outputs, line)


# ---------------------------------------------------------------------------- validation


def _validate(rule: Rule) -> None:
    from graphopt.patterns.checks import CHECKS
    from graphopt.patterns.compute import COMPUTATIONS

    src = rule.source
    for pat in rule.targets:
        defined = set()
        for node in pat.nodes:
            defined.update(node.outputs)
            if node.copy_attrs_from:
                raise PipelineError(f"{src}:{pat.line}: attrs_of() belongs in a replacement")
        tensor_vars = {
            op.name for n in pat.nodes for op in n.inputs if isinstance(op, Var)
        } | defined
        attr_vars = {v.name for n in pat.nodes for v in n.attrs.values() if isinstance(v, AttrRef)}
        clash = tensor_vars & attr_vars
        if clash:
            raise PipelineError(
                f"{src}:{pat.line}: {sorted(clash)[0]!r} names both a tensor and an attribute"
            )
    first = rule.targets[0]
    known_tensors = {op.name for n in first.nodes for op in n.inputs if isinstance(op, Var)}
    known_tensors |= {o for n in first.nodes for o in n.outputs}
    known_attrs = {v.name for n in first.nodes for v in n.attrs.values() if isinstance(v, AttrRef)}
    for pat in rule.targets[1:]:
        mine = {op.name for n in pat.nodes for op in n.inputs if isinstance(op, Var)}
        mine |= {o for n in pat.nodes for o in n.outputs}
        mine_attrs = {v.name for n in pat.nodes for v in n.attrs.values() if isinstance(v, AttrRef)}
        missing = (
            _used_names(rule) - (mine | mine_attrs) - _computed(rule) - _replacement_defs(rule)
        )
        if missing:
            raise PipelineError(
                f"{src}:{pat.line}: this alternative does not bind {', '.join(sorted(missing))}"
            )
        if pat.output != first.output:
            raise PipelineError(f"{src}:{pat.line}: alternatives must have the same output name")
    for c in rule.checks:
        if c.name not in CHECKS:
            raise PipelineError(
                f"{src}:{c.line}: unknown check {c.name!r}; valid checks: {', '.join(sorted(CHECKS))}"
            )
    if rule.compute is not None and rule.compute.name not in COMPUTATIONS:
        raise PipelineError(
            f"{src}:{rule.compute.line}: unknown computation {rule.compute.name!r}; valid: {', '.join(sorted(COMPUTATIONS))}"
        )
    available = known_tensors | _computed(rule)
    for node in rule.replacement.nodes:
        for op in node.inputs:
            if isinstance(op, Var) and op.name not in available:
                raise PipelineError(
                    f"{src}:{rule.replacement.line + node.line - 1}: replacement reads {op.name!r}, which the target does not bind"
                )
        for k, v in node.attrs.items():
            if isinstance(v, AttrRef) and v.name not in known_attrs | known_tensors | _computed(
                rule
            ):
                raise PipelineError(
                    f"{src}:{rule.replacement.line + node.line - 1}: attribute {k}={v.name} is not captured by the target"
                )
        if node.copy_attrs_from and node.copy_attrs_from not in {
            o for n in first.nodes for o in n.outputs
        }:
            raise PipelineError(
                f"{src}:{rule.replacement.line + node.line - 1}: attrs_of({node.copy_attrs_from}) names no target node output"
            )
        available |= set(node.outputs)
    if rule.replacement.output != first.output:
        raise PipelineError(
            f"{src}:{rule.replacement.line}: the replacement's last node must produce {first.output!r} (the target's output)"
        )
    for call in [*rule.checks, *([rule.compute] if rule.compute else [])]:
        for a in call.args:
            if isinstance(a, Var) and a.name not in known_tensors | known_attrs:
                raise PipelineError(
                    f"{src}:{call.line}: {call.name}() reads unknown name {a.name!r}"
                )
    for call in rule.checks:
        _check_arity(src, call, CHECKS[call.name], "check")
    if rule.compute is not None:
        _check_arity(src, rule.compute, COMPUTATIONS[rule.compute.name], "computation")
    _validate_wiring(rule)


def _check_arity(src: str, call: Call, fn: Any, what: str) -> None:
    """The call's arguments fit the named check's or computation's parameters (after the
    match): a wrong count was a TypeError traceback at the first match."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - every registered one is a function
        return
    try:
        signature.bind(None, *call.args)
    except TypeError:
        params = list(signature.parameters.values())[1:]
        spelled = ", ".join(("*" if p.kind is p.VAR_POSITIONAL else "") + p.name for p in params)
        raise PipelineError(
            f"{src}:{call.line}: {what} {call.name} takes ({spelled}), got {len(call.args)} argument(s)"
        ) from None


def _validate_wiring(rule: Rule) -> None:
    """What the matcher and the edit assume of the wiring: every target node feeds the
    target's output, no name is produced twice, the replacement reads no tensor the rewrite
    removes (a target intermediate, unless `multi_use` may keep its producer) and not its own
    output (a cycle). Sets `rule.rematches`."""
    src = rule.source
    computed = _computed(rule)
    intermediates: set[str] = set()
    for pat in rule.targets:
        produced: dict[str, int] = {}
        for node in pat.nodes:
            for out in node.outputs:
                if out in produced:
                    raise PipelineError(
                        f"{src}:{pat.line + node.line - 1}: the target produces {out!r} twice"
                    )
                produced[out] = node.line
        if len(pat.nodes) > _MAX_TARGET_NODES:
            # the matcher walks a target recursively: a chain of ~250 nodes was a
            # RecursionError at the first anchor
            raise PipelineError(
                f"{src}:{pat.line}: the target has {len(pat.nodes)} nodes, more than "
                f"{_MAX_TARGET_NODES}; split the rule"
            )
        producers = pat.producers()
        _refuse_cycles(rule, pat, producers)
        reached, todo = set(), [len(pat.nodes) - 1]
        while todo:
            i = todo.pop()
            if i in reached:
                continue
            reached.add(i)
            for op in pat.nodes[i].inputs:
                if isinstance(op, Var) and op.name in producers:
                    todo.append(producers[op.name])
        for i, node in enumerate(pat.nodes):
            if i not in reached:
                raise PipelineError(
                    f"{src}:{pat.line + node.line - 1}: {node.op} does not feed the target's "
                    f"output {pat.output!r} (matching starts there and walks up to its inputs)"
                )
        clash = sorted(computed & (set(produced) | _pattern_inputs(pat)))
        if clash:
            raise PipelineError(
                f"{src}:{rule.compute.line if rule.compute else rule.line}: computed name "
                f"{clash[0]!r} is also a name of the target"
            )
        root_outputs = set(pat.root.outputs)
        intermediates |= set(produced) - root_outputs
        # what the replacement reads before defining it itself
        defined: set[str] = set()
        for node in rule.replacement.nodes:
            line = rule.replacement.line + node.line - 1
            for op in node.inputs:
                if not isinstance(op, Var) or op.name in defined or op.name in computed:
                    continue
                if op.name in root_outputs:
                    raise PipelineError(
                        f"{src}:{line}: the replacement reads {op.name!r}, the output it "
                        "replaces (a cycle)"
                    )
                if op.name in produced and op.name not in rule.multi_use:
                    raise PipelineError(
                        f"{src}:{line}: the replacement reads {op.name!r}, which a target node "
                        "produces and the rewrite removes (list it under `multi_use:` to read "
                        "it where its producer has other readers)"
                    )
            defined.update(node.outputs)
    made: dict[str, int] = {}
    for node in rule.replacement.nodes:
        line = rule.replacement.line + node.line - 1
        for out in node.outputs:
            if out in made or out in computed:
                raise PipelineError(f"{src}:{line}: the replacement produces {out!r} twice")
            made[out] = line
    unknown = sorted(rule.multi_use - intermediates)
    if unknown:
        valid = ", ".join(sorted(intermediates)) or "none: the target has no intermediate"
        raise PipelineError(
            f"{src}:{rule.line}: multi_use names {unknown[0]!r}, no intermediate of the target; "
            f"valid: {valid}"
        )
    rule.rematches = any(_rematches(rule, pat) for pat in rule.targets)


def _refuse_cycles(rule: Rule, pat: Pattern, producers: dict[str, int]) -> None:
    """A target whose nodes read each other in a circle (`a = Relu(b)`, `b = Relu(a)`, or
    `a = Relu(a)`) matches no model (a model is acyclic); the matcher recursed on it without
    end (a RecursionError at the first anchor)."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done (an iterative DFS)
    for start in range(len(pat.nodes)):
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(pat.nodes[start].inputs))]
        while stack:
            i, pending = stack[-1]
            for op in pending:
                j = producers.get(op.name) if isinstance(op, Var) else None
                if j is None or state.get(j) == 2:
                    continue
                if state.get(j) == 1:
                    node, read = pat.nodes[i], op.name if isinstance(op, Var) else ""
                    raise PipelineError(
                        f"{rule.source}:{pat.line + node.line - 1}: the target's {node.op} "
                        f"reads {read!r}, which it feeds itself: a cycle, which no model has"
                    )
                state[j] = 1
                stack.append((j, iter(pat.nodes[j].inputs)))
                break
            else:
                state[i] = 2
                stack.pop()


def _check_onnx_names(rule: Rule) -> None:
    known = _onnx_attributes()
    for pat in [*rule.targets, rule.replacement]:
        for node in pat.nodes:
            if node.domain != "":
                continue
            where = f"{rule.source}:{pat.line + node.line - 1}"
            attrs = known.get(node.op)
            if attrs is None:
                close = difflib.get_close_matches(node.op, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise PipelineError(
                    f"{where}: {node.op} is no ONNX op{hint}; an op of another domain is "
                    f"written domain.{node.op}"
                )
            for key in node.attrs:
                if key not in attrs:
                    valid = ", ".join(sorted(attrs)) or "none"
                    raise PipelineError(
                        f"{where}: {node.op} has no attribute {key!r} in any opset; valid: {valid}"
                    )


@functools.cache
def _onnx_attributes() -> dict[str, frozenset[str]]:
    """Default-domain op → the attribute names it has in any opset."""
    import onnx

    found: dict[str, set[str]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx"):
            found.setdefault(schema.name, set()).update(schema.attributes)
    return {op: frozenset(names) for op, names in found.items()}


def _pattern_inputs(pat: Pattern) -> set[str]:
    return {op.name for n in pat.nodes for op in n.inputs if isinstance(op, Var)} | {
        v.name for n in pat.nodes for v in n.attrs.values() if isinstance(v, AttrRef)
    }


# A replacement operand as a graph: ("node", index, output position), ("free", name), or
# ("absent",).
_Ref = tuple[Any, ...]


def _rematches(rule: Rule, target: Pattern) -> bool:
    """Whether `target` certainly matches the replacement's own nodes at one of them, whatever
    the tensors around it: literals, attribute defaults and constants the rule's checks need
    count as no match (they may not hold), so only a certain re-match is reported."""
    from graphopt.patterns.engine import COMMUTATIVE  # (the engine imports this module)

    rep = rule.replacement.nodes
    env: dict[str, _Ref] = {}
    wired: list[list[_Ref]] = []
    for i, node in enumerate(rep):
        refs: list[_Ref] = []
        for op in node.inputs:
            if isinstance(op, Var):
                refs.append(env.get(op.name, ("free", op.name)))
            else:
                refs.append(("absent",))
        wired.append(refs)
        for j, out in enumerate(node.outputs):
            env[out] = ("node", i, j)
    producers = target.producers()
    constant_vars = rule.constant_vars

    def node_matches(p: int, r: int, bound: dict[str, _Ref], used: set[int]) -> Iterator[None]:
        pnode, rnode = target.nodes[p], rep[r]
        if (pnode.op, pnode.domain) != (rnode.op, rnode.domain) or r in used:
            return
        for key, want in pnode.attrs.items():
            if isinstance(want, AttrRef):
                continue  # a capture takes any value
            have = rnode.attrs.get(key, _NO_ATTR)
            if isinstance(have, AttrRef) or have is _NO_ATTR or have != want:
                return  # not certain: a captured or defaulted value may differ
        n = max(len(pnode.inputs), len(wired[r]))
        refs = wired[r] + [("absent",)] * (n - len(wired[r]))
        if len(pnode.inputs) < len(wired[r]) and any(
            x[0] != "absent" for x in refs[len(pnode.inputs) :]
        ):
            return
        orders: Iterable[tuple[int, ...]] = [tuple(range(len(pnode.inputs)))]
        if pnode.op in COMMUTATIVE and pnode.domain == "" and 2 <= len(pnode.inputs) <= 3:
            orders = itertools.permutations(range(len(pnode.inputs)))
        for order in orders:
            yield from operands(p, [refs[k] for k in order], 0, dict(bound), used | {r})

    def operands(
        p: int, refs: list[_Ref], k: int, bound: dict[str, _Ref], used: set[int]
    ) -> Iterator[None]:
        pnode = target.nodes[p]
        if k == len(pnode.inputs):
            yield None
            return
        op, ref = pnode.inputs[k], refs[k]
        if isinstance(op, Absent):
            if ref[0] == "absent":
                yield from operands(p, refs, k + 1, bound, used)
            return
        if not isinstance(op, Var):
            return  # a literal: a constant the replacement reads may or may not equal it
        if ref[0] == "absent":
            if op.optional and bound.get(op.name, ref) == ref:
                yield from operands(p, refs, k + 1, {**bound, op.name: ref}, used)
            return
        if op.name in producers and producers[op.name] != p:
            q = producers[op.name]
            if ref[0] != "node" or ref[2] != target.nodes[q].outputs.index(op.name):
                return
            if op.name in bound:
                if bound[op.name] == ref:
                    yield from operands(p, refs, k + 1, bound, used)
                return
            for _ in node_matches(q, ref[1], {**bound, op.name: ref}, used):
                yield from operands(p, refs, k + 1, {**bound, op.name: ref}, used)
            return
        if op.name in bound:
            if bound[op.name] == ref:
                yield from operands(p, refs, k + 1, bound, used)
            return
        if op.name in constant_vars and ref[0] == "node":
            return  # a check needs a constant there: a new node's output is none
        yield from operands(p, refs, k + 1, {**bound, op.name: ref}, used)

    root = len(target.nodes) - 1
    # at any node it makes, not only its last: `t = Clip(x, lo, hi); y = Identity(t)` for
    # Clip(x, lo, hi) was rewritten again at its new Clip on every sweep, up to max_sweeps
    return any(any(True for _ in node_matches(root, r, {}, set())) for r in range(len(rep)))


_NO_ATTR = object()


def _used_names(rule: Rule) -> set[str]:
    used: set[str] = set()
    for node in rule.replacement.nodes:
        used |= {op.name for op in node.inputs if isinstance(op, Var)}
        used |= {v.name for v in node.attrs.values() if isinstance(v, AttrRef)}
    for call in [*rule.checks, *([rule.compute] if rule.compute else [])]:
        used |= {a.name for a in call.args if isinstance(a, Var)}
    return used


def _computed(rule: Rule) -> set[str]:
    return set(rule.compute.outputs) if rule.compute else set()


def _replacement_defs(rule: Rule) -> set[str]:
    return {o for n in rule.replacement.nodes for o in n.outputs}
