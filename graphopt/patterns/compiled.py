"""Target patterns compiled into matcher closures: the fast path of `engine.Matcher`.

`compile_target(pattern)` turns a target into a chain of closures, one per pattern node and per
operand, built once per pattern (cached on it). Searching at an anchor walks the producers in
the same order as the generic matcher, tries the same operand orders of commutative ops, and
hands every complete match, in the same order, to a callback that returns True to stop: the
first match the rewriter accepts is the one the generic matcher would have given it.

The difference is bookkeeping: bindings live in a slot list undone by a trail, and a `Match` is
built only for a complete match; a failure records only whether it happened with two or more
nodes bound (the generic matcher's `best_depth >= 2`), not why. `--explain` therefore keeps the
generic matcher, which says why.

What it does not do: check anything the generic matcher does not (constness, rank and the
rule's checks come after, in `rewrite`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import onnx

from graphopt.ir import Graph
from graphopt.patterns.engine import (
    COMMUTATIVE,
    Facts,
    Match,
    attr_mismatch,
    domain_version,
    domains_of,
    literal_matches,
    literal_tolerance,
    needs_constant,
)
from graphopt.patterns.rules import Absent, Literal, Pattern, Rule, Var

_UNBOUND: Any = object()

Cont = Callable[["Search"], bool]
NodeStep = Callable[["Search", onnx.NodeProto, Cont], bool]
InputStep = Callable[["Search", onnx.NodeProto, "list[str] | tuple[str, ...]", Cont], bool]
# A necessary condition for a match at a node (`facts`, when given, caches the node reads).
Screen = Callable[[Graph, onnx.NodeProto, "Facts | None"], bool]


class Search:
    """The state of one search at one anchor: slot bindings and the trails that undo them."""

    __slots__ = (
        "attrs",
        "deep",
        "env",
        "facts",
        "graph",
        "literal_sites",
        "node_trail",
        "var_trail",
    )  # fmt: skip

    def __init__(self, graph: Graph, facts: Facts, slots: int):
        self.graph = graph
        self.facts = facts
        self.env: list[Any] = [_UNBOUND] * slots
        self.var_trail: list[tuple[int, Any]] = []  # (slot, previous value)
        self.node_trail: list[tuple[int, onnx.NodeProto]] = []  # (pattern node, node)
        self.attrs: dict[str, Any] = {}
        self.literal_sites: list[tuple[int, str]] = []
        self.deep = False  # a failure with two or more pattern nodes bound

    def fail(self) -> None:
        if len(self.node_trail) >= 2:
            self.deep = True

    def bind(self, slot: int, value: Any) -> None:
        self.var_trail.append((slot, self.env[slot]))
        self.env[slot] = value

    def undo(self, mark: int) -> None:
        trail, env = self.var_trail, self.env
        while len(trail) > mark:
            slot, old = trail.pop()
            env[slot] = old


class CompiledTarget:
    """One target pattern as closures; `search` calls `accept` with each match in order."""

    def __init__(self, pattern: Pattern, constant_vars: frozenset[str] = frozenset()):
        self.pattern = pattern
        self.constant_vars = constant_vars
        names: list[str] = []
        for pnode in pattern.nodes:
            for operand in pnode.inputs:
                if isinstance(operand, Var) and operand.name not in names:
                    names.append(operand.name)
            for out in pnode.outputs:
                if out not in names:
                    names.append(out)
        self.names = names
        self.slot = {name: i for i, name in enumerate(names)}
        self._nodes: dict[int, NodeStep] = {}
        self.root = self._node(len(pattern.nodes) - 1)
        self._skeletons: dict[int, Screen] = {}
        self.plausible = self._skeleton(len(pattern.nodes) - 1)
        # Two-node targets are screened by the runner's input-kind filter and fail fast.
        self.screen = self.plausible if len(pattern.nodes) > 2 else None
        # Ops of the pattern nodes two producer steps above the root along required operands:
        # `plausible` passes only where some producer of a producer of the anchor's inputs has
        # one of these ops (empty: no such node, no such condition).
        root = len(pattern.nodes) - 1
        self.grandchild_ops = frozenset(
            pattern.nodes[g].op for c in self._required(root) for g in self._required(c)
        )

    def search(
        self,
        rule: Rule,
        graph: Graph,
        facts: Facts,
        anchor: onnx.NodeProto,
        accept: Callable[[Match], bool],
    ) -> tuple[bool, bool]:
        """(stopped, deep): whether `accept` returned True for some match, and whether a failed
        branch got two or more nodes deep."""
        state = Search(graph, facts, len(self.names))
        names, pattern = self.names, self.pattern

        def done(s: Search) -> bool:
            env = s.env
            tensors = {names[slot]: env[slot] for slot, old in s.var_trail if old is _UNBOUND}
            m = Match(
                rule, pattern, graph, facts, tensors, dict(s.attrs), dict(s.node_trail),
                list(s.literal_sites),
            )  # fmt: skip
            return accept(m)

        stopped = self.root(state, anchor, done)
        return stopped, state.deep

    # ------------------------------------------------------------------ compilation
    def _required(self, index: int) -> list[int]:
        """The pattern nodes producing a required (non-optional) operand of node `index`: the
        children `_skeleton` checks."""
        producers = self.pattern.producers()
        return [
            producers[operand.name]
            for operand in self.pattern.nodes[index].inputs
            if isinstance(operand, Var)
            and not operand.optional
            and producers.get(operand.name, index) != index
        ]

    def _skeleton(self, index: int) -> Screen:
        """A necessary condition for a match at a node, without binding anything: op types
        along every producer path, and constant operands where the pattern needs them
        (commutative operands in any order)."""
        cached = self._skeletons.get(index)
        if cached is not None:
            return cached
        pnode = self.pattern.nodes[index]
        op, domains = pnode.op, domains_of(pnode.domain)
        producers = self.pattern.producers()
        commutative = op in COMMUTATIVE
        needs: list[tuple[int, Screen | None]] = []
        for k, operand in enumerate(pnode.inputs):
            if needs_constant(operand, self.constant_vars, producers):
                needs.append((k, None))  # a constant
            elif (
                isinstance(operand, Var)
                and not operand.optional
                and producers.get(operand.name, index) != index
            ):
                needs.append((k, self._skeleton(producers[operand.name])))

        def check(graph: Graph, node: onnx.NodeProto, facts: Facts | None = None) -> bool:
            if facts is None:
                node_op, node_domain = node.op_type, node.domain
            else:
                node_op, node_domain = facts.op_of(node)
            if node_op != op or node_domain not in domains:
                return False
            if not needs:
                return True
            inputs = tuple(node.input) if facts is None else facts.io(node)[3]
            count = len(inputs)
            producer, nodes = graph.producer, graph.nodes
            for k, child in needs:
                if commutative:
                    candidates = inputs
                elif k < count:
                    candidates = inputs[k : k + 1]
                else:
                    return False
                for t in candidates:
                    if not t:
                        continue
                    if child is None:
                        if graph.is_constant(t):
                            break
                    else:
                        # `graph.producer_node(t)` with the dicts (screens run ~600 times a
                        # pass on ppocr_det)
                        p = producer.get(t)
                        if p is not None and child(graph, nodes[p], facts):
                            break
                else:
                    return False
            return True

        self._skeletons[index] = check
        return check

    def _node(self, index: int) -> NodeStep:
        cached = self._nodes.get(index)
        if cached is not None:
            return cached
        pnode = self.pattern.nodes[index]
        op, domains, attrs = pnode.op, domains_of(pnode.domain), pnode.attrs
        outs = [(j, self.slot[out]) for j, out in enumerate(pnode.outputs)]
        n = len(pnode.inputs)
        orders = (
            list(itertools.permutations(range(n)))
            if op in COMMUTATIVE and pnode.domain == "" and 2 <= n <= 3
            else None
        )
        first = self._inputs(index, 0)

        def step(s: Search, node: onnx.NodeProto, cont: Cont) -> bool:
            _, node_op, node_domain, inputs, produced = s.facts.io(node)
            if node_op != op or node_domain not in domains:
                s.fail()
                return False
            trail = s.node_trail
            for entry in trail:
                if entry[1] is node:
                    s.fail()
                    return False
            trail.append((index, node))
            var_trail = s.var_trail
            mark = len(var_trail)
            env = s.env
            ok = True
            for j, slot in outs:
                if j >= len(produced) or not produced[j]:
                    s.fail()
                    ok = False
                    break
                bound = env[slot]
                if bound is _UNBOUND or bound is None:
                    var_trail.append((slot, bound))
                    env[slot] = produced[j]
                elif bound != produced[j]:
                    ok = False
                    break
            attr_mark = None
            if ok and attrs:
                attr_mark = list(s.attrs.items())
                if attr_mismatch(pnode, node, s.attrs, domain_version(s.graph, node_domain)):
                    s.fail()
                    ok = False
            if ok:
                names = list(inputs)
                if len(names) > n:
                    if any(names[n:]):
                        s.fail()  # more inputs than the pattern's node
                        ok = False
                    del names[n:]
                elif len(names) < n:
                    names.extend([""] * (n - len(names)))
            if ok:
                if orders is None:
                    if first(s, node, names, cont):
                        return True
                elif n == 2:  # the two orders, once when both operands are the same tensor
                    if first(s, node, names, cont):
                        return True
                    if names[0] != names[1] and first(s, node, [names[1], names[0]], cont):
                        return True
                else:
                    tried = set()
                    for order in orders:
                        permuted = tuple([names[k] for k in order])
                        if permuted in tried:
                            continue  # Mul(x, x): both orders are the same
                        tried.add(permuted)
                        if first(s, node, permuted, cont):
                            return True
            if attr_mark is not None:
                s.attrs.clear()
                s.attrs.update(attr_mark)
            s.undo(mark)
            trail.pop()
            return False

        self._nodes[index] = step
        return step

    def _inputs(self, index: int, k: int) -> InputStep:
        pnode = self.pattern.nodes[index]
        if k == len(pnode.inputs):

            def end(s: Search, node: onnx.NodeProto, names: Any, cont: Cont) -> bool:
                return cont(s)

            return end
        rest = self._inputs(index, k + 1)
        operand = pnode.inputs[k]
        if isinstance(operand, Absent):

            def absent(s: Search, node: onnx.NodeProto, names: Any, cont: Cont) -> bool:
                if names[k]:
                    s.fail()
                    return False
                return rest(s, node, names, cont)

            return absent
        if isinstance(operand, Literal):
            # -1 for an infinite or exact literal: only `literal_matches`'s equalities
            want, tolerance = operand.value, literal_tolerance(operand)

            def literal(s: Search, node: onnx.NodeProto, names: Any, cont: Cont) -> bool:
                name = names[k]
                if not name:
                    return False
                value = s.facts.scalar(name)
                # NaN: no match; a float16 constant may be one of its ulps off (`literal_matches`)
                if value is None or not (
                    abs(value - want) <= tolerance
                    or literal_matches(value, s.facts.dtype(name), operand)
                ):
                    s.fail()
                    return False
                sites = s.literal_sites
                sites.append((index, name))
                if rest(s, node, names, cont):
                    return True
                sites.pop()
                return False

            return literal
        assert isinstance(operand, Var)
        slot, optional = self.slot[operand.name], operand.optional
        pidx = self.pattern.producers().get(operand.name)
        if pidx is not None and pidx != index:
            child = self._node(pidx)
            out_index = self.pattern.nodes[pidx].outputs.index(operand.name)

            def produced(s: Search, node: onnx.NodeProto, names: Any, cont: Cont) -> bool:
                name = names[k]
                if not name:
                    return missing(s, node, names, cont)
                for i, _ in s.node_trail:
                    if i == pidx:
                        if s.env[slot] != name:
                            return False
                        return rest(s, node, names, cont)
                graph = s.graph
                p = graph.producer.get(name)
                if p is None:
                    s.fail()
                    return False
                prod = graph.nodes[p]
                outputs = s.facts.io(prod, p)[4]  # `child` reads the cached entry
                if out_index >= len(outputs) or outputs[out_index] != name:
                    return False
                return child(s, prod, lambda s2: rest(s2, node, names, cont))

        def missing(s: Search, node: onnx.NodeProto, names: Any, cont: Cont) -> bool:
            if not optional:
                s.fail()
                return False
            bound = s.env[slot]
            if bound is not _UNBOUND and bound is not None:
                return False
            mark = len(s.var_trail)
            s.bind(slot, None)
            if rest(s, node, names, cont):
                return True
            s.undo(mark)
            return False

        if pidx is not None and pidx != index:
            return produced

        # A variable the rule's checks need constant: refused here rather than after the match.
        # (Every check that makes a variable constant refuses a present non-constant one.)
        constant = operand.name in self.constant_vars

        def variable(s: Search, node: onnx.NodeProto, names: Any, cont: Cont) -> bool:
            name = names[k]
            if not name:
                return missing(s, node, names, cont)
            bound = s.env[slot]
            if bound is not _UNBOUND:
                if bound != name:
                    s.fail()
                    return False
                return rest(s, node, names, cont)
            if constant and not s.graph.is_constant(name):
                s.fail()
                return False
            s.var_trail.append((slot, _UNBOUND))
            s.env[slot] = name
            if rest(s, node, names, cont):
                return True
            s.var_trail.pop()  # every step undoes its own bindings before it fails
            s.env[slot] = _UNBOUND
            return False

        return variable


def compiled(rule: Rule, pattern: Pattern) -> CompiledTarget:
    """The compiled matcher of one of `rule`'s targets (built on first use, cached)."""
    cached = pattern.__dict__.get("_compiled")
    if cached is None:
        cached = pattern.__dict__["_compiled"] = CompiledTarget(pattern, rule.constant_vars)
    return cached
