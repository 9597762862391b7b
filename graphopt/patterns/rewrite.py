"""Applying rules: the shared preconditions, checks, computations and the graph edit.

`RuleRunner.run(rules)` sweeps the graph: for every rule, every candidate anchor node of the
rule's anchor op (from an index built once per sweep), the first match that passes every
precondition is rewritten; sweeps repeat while something changed. Refusals and applications are
reported through `PassContext.note` for `graphopt optimize --explain`.

Preconditions shared by every rule (checked before any mutation):
  * every matched node that is removed has no consumer outside the match, and no output of it is
    a graph output (nodes the rule lists in `multi_use` may stay when used elsewhere);
  * a size-one constant matched by value does not raise the rank of the result it feeds;
  * every op of the replacement exists at the model's opset (never emit an op the model lacks);
  * rules from a user's file only: each new default-domain node fits its op's schema at the
    model's opset, and ONNX type inference gives the replaced output its element type and shape.

Cost: the first sweep visits each anchor node once per rule, screened by what feeds it (kept
per node across sweeps, forgotten where a rewrite re-produced an input); later sweeps only the
neighbourhood of the last sweep's rewrites. Matching uses each target's compiled matcher
(`graphopt.patterns.compiled`), behind an op/constness screen for targets of more than two
nodes; `--explain` uses the generic `Matcher`, which says why a partial match failed. Outside
`--explain`, the `refused` count includes anchors where a match failed two or more nodes deep
(a constant operand that is not constant among them), not anchors the screen rejected. A
computed constant reuses the storage of a same-shaped constant that only the removed nodes read
(a folded weight is written over the old one instead of being added next to it); one that a
later fold of this run may compute again (`_refoldable`: Conv(a·x + b, W·c) before
fold-input-add and fold-input-mul) is held in `Facts` and written once, when `run` ends
(ppocr_det: 5.5 → 3.7 MB of weight bytes written, and those not read back). Each node's
op, inputs and outputs are read once per run (`Facts.io`); a target whose screens mostly pass
is searched first and screened only when the search fails; from an anchor's second screened
target on, targets needing an op two producers up that the anchor lacks are skipped; a
computation that reads a weight only for its shape gets a placeholder
(`compute.LAYOUT_ONLY`), not its bytes. None of these changes which rewrites apply or refuse.

What it does not do: recurse into If/Loop/Scan bodies, or choose between overlapping rules
other than by order (first rule, first target, first match wins).
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from google.protobuf import unknown_fields

from graphopt._resources import builtin_dir
from graphopt.ir import Graph
from graphopt.ir.graph import clear_typed_data
from graphopt.patterns.checks import CHECKS
from graphopt.patterns.compiled import CompiledTarget, Screen, compiled
from graphopt.patterns.compute import LAYOUT_ONLY, call_raising
from graphopt.patterns.engine import (
    SCALAR_INPUTS,
    Facts,
    Match,
    Matcher,
    Refuse,
    first_opset,
    needs_constant,
    op_available,
)
from graphopt.patterns.kernels import REFUSES, Kernel, Refuses, kernel_for
from graphopt.patterns.rules import AttrRef, Call, Literal, Pattern, Rule, Var

if TYPE_CHECKING:
    from graphopt.passes.base import PassContext

log = logging.getLogger("graphopt.patterns")


@dataclass
class RunStats:
    applied: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    opset_needed: int = 0  # highest default-domain opset a refused replacement needed
    # rules applied in the last sweep `max_sweeps` allowed, and some rule's target ops are
    # around what it made (a further sweep might apply more)
    sweeps_exhausted: bool = False


class RuleRunner:
    """Runs a list of rules over one graph until none applies (at most `max_sweeps` sweeps).

    The first sweep tries every node of each rule's anchor op; later sweeps only the nodes a
    rewrite could have made matchable: within `K` consumer hops (K = the largest target) of a
    node a rewrite added or of the producers feeding it. A rule whose replacement needs a newer
    opset is not tried at all unless explanations are recorded or an upgrade may follow
    (`try_unavailable`).
    """

    def __init__(
        self,
        graph: Graph,
        ctx: PassContext | None = None,
        max_sweeps: int = 8,
        try_unavailable: bool = False,
    ):
        self.graph = graph
        self.ctx = ctx
        self.max_sweeps = max_sweeps
        self.try_unavailable = try_unavailable or bool(ctx is not None and ctx.record_explanations)
        self.facts = Facts(graph)
        explaining = bool(ctx is not None and ctx.record_explanations)
        self.matcher = Matcher(graph, self.facts, thorough=explaining)
        self.stats = RunStats()
        # hand-written matchers for the hottest rules (`graphopt.patterns.kernels`); the generic
        # engine alone with `--explain` (its refusals carry reasons) or the option
        # `rule_kernels=False`
        self.use_kernels = not explaining and bool(
            ctx is None or ctx.options.get("rule_kernels", True)
        )
        self._noted: set[tuple[str, str]] = set()
        self._added: list[str] = []
        self._touched: list[str] = []  # tensors whose producer a rewrite changed
        # What feeds each node (`_input_kinds`), kept across sweeps: a rewrite drops the
        # entries of the nodes it added and of the readers of the tensors it touched.
        self._kinds_of: dict[str, frozenset[str]] = {}
        # CompiledTarget → [screens passed, screens rejected] in this run (`_screened_search`)
        self._screen_record: dict[CompiledTarget, list[int]] = {}
        # (rule, opset) → (why its replacement cannot be emitted, the opset that would do)
        self._opset_reasons: dict[tuple[str, int], tuple[str, int]] = {}
        self._shapes: Any = None  # the model's inferred types, once a user rule needs them
        self._inferred: dict[bytes, Any] = {}  # _inferred_type's results in this run
        # node name → (rule, id of the node) for the nodes a `rematches` rule added
        self._made_by: dict[str, tuple[str, int]] = {}
        # whether `_store` holds the weights it overwrites (`Facts.hold`): while `run` runs,
        # which writes them when it ends
        self._holding = False
        self._rules: Sequence[Rule] = ()  # the rules `run` runs
        self._refold_sites: frozenset[tuple[str, str]] | None = None  # theirs, once needed
        # the graph's quantization annotations, read once a run (`_annotations`)
        self._notes: tuple[set[str], dict[str, list[str]]] | None = None

    def run(self, rules: Sequence[Rule]) -> RunStats:
        self._holding = True
        self._notes = None
        try:
            return self._run(rules)
        finally:
            self._holding = False
            self._notes = None
            self.facts.write_held()

    def _run(self, rules: Sequence[Rule]) -> RunStats:
        usable = []
        for rule in rules:
            if self._opset_of(rule) and not self.try_unavailable:
                continue
            usable.append(rule)
        if not usable:
            return self.stats
        reach = max(len(t.nodes) for r in usable for t in r.targets)
        self._rules, self._refold_sites = usable, None
        index = self._index(None)
        active = usable
        for _ in range(self.max_sweeps):
            self._added = []
            if not active or not self._sweep(active, index):
                break
            index = self._index(self._neighbourhood(self._added, reach))
            # A new match contains a new node, or the producer of one of its inputs (whose
            # consumers changed): only rules with such an op in their target can newly match.
            active = [r for r in usable if not _target_ops(r).isdisjoint(index)]
        else:
            # Bounded, but perhaps no fixed point: rules that undo each other (Relu ⇒ Max(x, 0)
            # and back) rewrite on every sweep; said once, not silently cut off. Where no rule
            # has an op of its target around what the last sweep made, that sweep reached the
            # fixed point (one sweep takes a whole chain): nothing to say.
            if not active:
                return self.stats
            self.stats.sweeps_exhausted = True
            log.warning(
                "rules still applied in the last of %d sweeps (%s): the result may not be a "
                "fixed point (do two rules undo each other?)",
                self.max_sweeps,
                ", ".join(sorted(self.stats.applied)),
            )
        return self.stats

    def _index(self, restrict: set[str] | None) -> dict[str, list[tuple[str, onnx.NodeProto]]]:
        """Op type → the (name, node) pairs of a sweep, in graph order (all nodes, or those in
        `restrict`). The names come from the graph's dict, not from the protobuf."""
        index: defaultdict[str, list[tuple[str, onnx.NodeProto]]] = defaultdict(list)
        if restrict is None:
            for entry in self.graph.nodes.items():
                index[entry[1].op_type].append(entry)
        else:
            # In graph order, like the first sweep: iterating the set would make the order of
            # overlapping rewrites depend on the string hash seed.
            for entry in self.graph.nodes.items():
                if entry[0] in restrict:
                    index[entry[1].op_type].append(entry)
        return dict(index)

    def _neighbourhood(self, added: list[str], reach: int) -> set[str]:
        graph = self.graph
        nodes, producer, consumers = graph.nodes, graph.producer, graph.consumers
        # every name here is a node of the graph: its wiring comes from the graph's index
        inputs_of, outputs_of = graph.inputs_of, graph.outputs_of
        frontier = [n for n in added if n in nodes]
        for name in list(frontier):
            for t in inputs_of(name):
                p = producer.get(t) if t else None
                if p is not None:
                    frontier.append(p)
        seen = set(frontier)
        for _ in range(reach):
            nxt = []
            for name in frontier:
                for out in outputs_of(name):
                    users = consumers.get(out)
                    if users:
                        for c in users:
                            if c not in seen:
                                seen.add(c)
                                nxt.append(c)
            frontier = nxt
            if not frontier:
                break
        return seen

    def _sweep(
        self, rules: Sequence[Rule], index: dict[str, list[tuple[str, onnx.NodeProto]]]
    ) -> bool:
        changed = False
        nodes = self.graph.nodes
        consumers = self.graph.consumers
        kinds_of = self._kinds_of
        filtering = not self.matcher.thorough
        touched, added = self._touched, self._added
        for rule in rules:
            needs = _needs_by_op(rule)
            kernel = self._kernel(rule) if filtering else None
            for op in sorted(needs):
                wanted = needs[op]
                for name, node in index.get(op, ()):
                    if nodes.get(name) is not node:
                        continue  # removed by an earlier rewrite in this sweep
                    if rule.rematches and self._made_by.get(name) == (rule.name, id(node)):
                        continue  # its own result, which it would rewrite again and again
                    first_added = len(added)
                    done = kernel is not None and self._try_kernel(kernel, rule, name, node)
                    if done is REFUSES:
                        # the engine would refuse here (`kernels.REFUSES`): counted as it counts
                        # it, where the input-kind screen below lets it try the anchor
                        kinds = kinds_of.get(name)
                        if kinds is None:
                            kinds = kinds_of[name] = self._input_kinds(node, name)
                        if any(need <= kinds for need in wanted):
                            self.stats.refused[rule.name] = self.stats.refused.get(rule.name, 0) + 1
                        continue
                    if done:
                        changed = True
                        for t in touched:  # as after a generic rewrite (below)
                            for c in consumers.get(t, ()):
                                kinds_of.pop(c, None)
                        for n in added[first_added:]:
                            kinds_of.pop(n, None)
                        touched.clear()
                        continue
                    kinds = None
                    if filtering:
                        kinds = kinds_of.get(name)
                        if kinds is None:
                            kinds = kinds_of[name] = self._input_kinds(node, name)
                        for need in wanted:
                            if need <= kinds:
                                break
                        else:
                            continue
                    first_added = len(added)
                    if self.try_rule(rule, node, kinds):
                        changed = True
                        # What feeds a node changes only where a tensor's producer changed;
                        # an added node may reuse a removed node's name.
                        for t in touched:
                            for c in consumers.get(t, ()):
                                kinds_of.pop(c, None)
                        for n in added[first_added:]:
                            kinds_of.pop(n, None)
                    touched.clear()
        return changed

    def _kernel(self, rule: Rule) -> Kernel | None:
        """The rule's kernel (`graphopt.patterns.kernels`), where it has one, the runner uses
        kernels and the rule's replacement exists at the model's opset."""
        if not self.use_kernels or self._opset_of(rule):
            return None
        return kernel_for(rule)

    def _try_kernel(
        self, kernel: Kernel, rule: Rule, name: str, anchor: onnx.NodeProto
    ) -> bool | Refuses:
        """Rewrite at `anchor` with the match `kernel` proves; False (nothing changed) where it
        defers to the generic engine or the rule's computation refuses; `REFUSES` (nothing
        changed) where the kernel proves that the engine refuses the anchor."""
        m = kernel(self, rule, name, anchor)
        if m is None:
            return False
        if isinstance(m, Refuses):
            return REFUSES
        try:
            self._compute(m)
        except Refuse:
            return False  # the generic engine refuses it again, with the reason
        self._apply(m)
        self.stats.applied[rule.name] = self.stats.applied.get(rule.name, 0) + 1
        self._note(rule, anchor, "applied", "")
        return True

    def _opset_of(self, rule: Rule) -> str:
        """Why the rule's replacement cannot be emitted at the model's opset ("" if it can)."""
        version = self.graph.opset_version("")
        key = (rule.name, version)
        if key not in self._opset_reasons:
            self._opset_reasons[key] = self._opset_reason(rule, version)
        return self._opset_reasons[key][0] or self._contrib_version(rule)

    def _opset_reason(self, rule: Rule, version: int) -> tuple[str, int]:
        """(why, naming the first missing op; the highest opset any missing op needs)."""
        reason, highest = "", 0
        for pnode in rule.replacement.nodes:
            if pnode.domain in ("", "ai.onnx") and not op_available(pnode.op, "", version):
                need = first_opset(pnode.op) or 0
                reason = reason or f"{pnode.op} needs opset {need}, the model has {version}"
                highest = max(highest, need)
        return reason, highest

    def _contrib_version(self, rule: Rule) -> str:
        """Why the replacement's com.microsoft ops cannot be emitted ("" if they can): onnxruntime
        registers its contrib ops at com.microsoft version 1, and a node of that domain under a
        model's import of another version does not load (0: "com.microsoft:QuickGelu(-1) is not
        a registered function/op"; 2 and above: no model loads). `_import_domain` keeps a
        model's import as it is, so a user rule (the built-in ones check contrib_import()) made
        a model that loaded into one that does not."""
        version = self.graph.opset.get(_CONTRIB)
        if version is None or version == 1:
            return ""
        for pnode in rule.replacement.nodes:
            if pnode.domain == _CONTRIB:
                return (
                    f"{_CONTRIB}.{pnode.op}: the model imports {_CONTRIB} at version "
                    f"{version}; onnxruntime's contrib ops are version 1"
                )
        return ""

    # ------------------------------------------------------------------ one anchor
    def try_rule(
        self, rule: Rule, anchor: onnx.NodeProto, kinds: frozenset[str] | None = None
    ) -> bool:
        """Match `rule` at `anchor`; rewrite and return True if some match passes every check.
        `kinds`: what feeds `anchor` (`_input_kinds`), when the caller has it."""
        refusal = ""  # why a structural match was refused (preferred over `nomatch`)
        nomatch = ""  # why the deepest partial match failed
        matched_any = False
        matcher = self.matcher

        def accept(m: Match) -> bool:
            nonlocal refusal, matched_any
            matched_any = True
            reason = self._preconditions(m)
            if not reason:
                try:
                    self._compute(m)
                except Refuse as e:
                    reason = str(e)
            if not reason and _user_rule(m.rule):
                reason = self._schema_fit(m) or self._type_fit(m)
            if reason:
                refusal = refusal or reason
                return False
            self._apply(m)
            return True

        op = anchor.op_type
        screened = 0
        two_up: set[str] | None = None  # ops two producers up from the anchor, once needed
        for pattern, root_op, needs, target in _targets(rule):
            if root_op != op:
                continue
            if matcher.thorough:
                applied = any(accept(m) for m in matcher.matches(rule, pattern, anchor))
                deep = matcher.best_depth >= 2
            else:
                if kinds is None:
                    kinds = self._input_kinds(anchor)
                if not needs <= kinds:
                    continue
                if target.screen is not None:
                    # From the second screened target on (the first did not apply here), a
                    # target whose screen needs a producer's producer of an op the anchor lacks
                    # is skipped unscreened: the ten macro variants of a hardswish target are
                    # rejected by one set test.
                    screened += 1
                    if screened > 1 and target.grandchild_ops:
                        if two_up is None:
                            two_up = self._two_up_ops(anchor)
                        if two_up.isdisjoint(target.grandchild_ops):
                            continue
                    found = self._screened_search(rule, target, target.screen, anchor, accept)
                    if found is None:
                        continue  # the screen rejects the anchor: no match, nothing refused
                    applied, deep = found
                else:
                    applied, deep = target.search(rule, self.graph, self.facts, anchor, accept)
            if applied:
                self.stats.applied[rule.name] = self.stats.applied.get(rule.name, 0) + 1
                self._note(rule, anchor, "applied", "")
                return True
            if not matched_any and deep and not nomatch:
                nomatch = f"no match: {matcher.best_reason}" if matcher.thorough else "no match"
        refusal = refusal or nomatch
        if refusal:
            self.stats.refused[rule.name] = self.stats.refused.get(rule.name, 0) + 1
            self._note(rule, anchor, "refused", refusal)
        return False

    def _screened_search(
        self,
        rule: Rule,
        target: CompiledTarget,
        screen: Screen,
        anchor: onnx.NodeProto,
        accept: Callable[[Match], bool],
    ) -> tuple[bool, bool] | None:
        """`target.search` behind `screen`: None where the screen rejects the anchor, else the
        search's (stopped, deep).

        The screen is a necessary condition of a match, so searching first and screening only
        a failed search gives the same answer: a search the screen would have prevented finds
        no match, so it accepted nothing, and its failure is dropped. Which goes first is only
        a matter of cost, chosen per target from its screens so far in this run: a target whose
        screens mostly passed is searched first (layout_cdla's 94 HardSwish anchors: one walk
        of the pattern each instead of two)."""
        graph, facts = self.graph, self.facts
        record = self._screen_record.setdefault(target, [0, 0])  # [passed, rejected]
        if record[0] > record[1]:
            stopped, deep = target.search(rule, graph, facts, anchor, accept)
            if stopped:
                record[0] += 1  # a match: the screen passes
                return stopped, deep
            if not screen(graph, anchor, facts):
                record[1] += 1
                return None
            record[0] += 1
            return stopped, deep
        if not screen(graph, anchor, facts):
            record[1] += 1
            return None
        record[0] += 1
        return target.search(rule, graph, facts, anchor, accept)

    def _two_up_ops(self, anchor: onnx.NodeProto) -> set[str]:
        """The op types of the producers of the inputs of the producers of `anchor`'s inputs."""
        producer, nodes, io = self.graph.producer, self.graph.nodes, self.facts.io
        ops = set()
        for t in io(anchor)[3]:
            p = producer.get(t) if t else None
            if p is None:
                continue
            for t2 in io(nodes[p], p)[3]:
                p2 = producer.get(t2) if t2 else None
                if p2 is not None:
                    ops.add(self.facts.op_of(nodes[p2])[0])
        return ops

    def _input_kinds(self, node: onnx.NodeProto, name: str | None = None) -> frozenset[str]:
        """What feeds `node`: "#const" for constants, else the producers' op types. `name`:
        the node's name when the caller took it from the graph's index (`Facts.io`)."""
        graph = self.graph
        # `Graph.is_constant` and `producer_node` spelled out with the dicts: called for every
        # anchor of the first sweep (ppocr_det: 410 nodes, 2.1 → 1.2 µs a node).
        initializers, producer, nodes = graph.initializers, graph.producer, graph.nodes
        io, op_of = self.facts.io, self.facts.op_of
        kinds = set()
        for t in io(node, name)[3]:
            if not t:
                continue
            if t in initializers and not graph.is_graph_input(t):
                kinds.add("#const")
                continue
            p = producer.get(t)
            if p is not None:
                op, domain = op_of(nodes[p])
                kinds.add("#const" if op == "Constant" and domain in _ONNX else op)
        return frozenset(kinds)

    def _note(self, rule: Rule, anchor: onnx.NodeProto, outcome: str, reason: str) -> None:
        if self.ctx is None or not self.ctx.record_explanations:
            return
        key = (rule.name, anchor.name)
        if outcome != "applied" and key in self._noted:
            return
        self._noted.add(key)
        self.ctx.note(rule.name, anchor.name, outcome, reason)

    # ------------------------------------------------------------------ preconditions
    def _preconditions(self, m: Match) -> str:
        reason = self._removable(m)
        if reason:
            return reason
        reason = self._literal_ranks(m)
        if reason:
            return reason
        reason = self._opset(m)
        if reason:
            return reason
        for call in m.rule.checks:
            try:
                reason = CHECKS[call.name](m, *call.args) or ""
            except Refuse as e:
                reason = str(e)
            if reason:
                return f"{call.name}: {reason}"
        return ""

    def removal_set(self, m: Match) -> tuple[list[onnx.NodeProto], str]:
        """Matched nodes to remove, or a reason why an intermediate is needed elsewhere."""
        remove = {n.name: n for n in m.nodes.values()}
        root = m.anchor
        # a `multi_use` intermediate the replacement reads: its producer stays (the new nodes
        # read it), which its own producers in the match then need to allow
        for kept in _kept_reads(m.rule):
            node = m.node_of(kept)
            if node is not None and node is not root:
                remove.pop(node.name, None)
        graph = self.graph
        consumers = graph.consumers
        io = self.facts.io
        while True:
            keep = []
            for name, node in remove.items():
                if node is root:
                    continue
                for out in io(node)[4]:
                    if not out:
                        continue
                    users = consumers.get(out)
                    # a keys-view comparison: every reader is matched (no Python-level loop)
                    if (users is None or users.keys() <= remove.keys()) and not (
                        graph.is_graph_output(out)
                    ):
                        continue
                    keep.append((name, out, [c for c in users or () if c not in remove]))
                    break
            if not keep:
                break
            for name, out, outside in keep:
                var = _var_of(m, out)
                if var is None or var not in m.rule.multi_use:
                    where = f"{outside[0]}" if outside else "the graph outputs"
                    return [], f"intermediate {out} is also used by {where}"
                del remove[name]
        for out in io(root)[4][1:]:
            if out and (consumers.get(out) or graph.is_graph_output(out)):
                return [], f"{root.name} output {out} is used"
        # a variable the target leaves free may be bound to a tensor a matched node makes
        # (`Mul(Relu(x), z)` at Mul(r, r): z is r): the replacement must not read it once that
        # node is gone (the model read a tensor nothing produced)
        tensors, producer = m.tensors, graph.producer
        for var in _outside_reads(m.rule):
            t = tensors.get(var)
            made_by = producer.get(t) if t else None
            if made_by is not None and made_by in remove:
                return (
                    [],
                    f"the replacement reads {t}, which {made_by} makes and the rewrite removes",
                )
        return list(remove.values()), ""

    def _removable(self, m: Match) -> str:
        remove, reason = self.removal_set(m)
        m.removal = remove
        return reason

    def _literal_ranks(self, m: Match) -> str:
        facts = self.facts
        rank, io = facts.rank, facts.io
        for index, constant in m.literal_sites:
            value = facts.value(constant)
            if value is None or value.ndim == 0:
                continue
            node = m.nodes[index]
            _, op, domain, inputs, _ = io(node)
            k = inputs.index(constant)  # where the node reads it (commutative operands swap)
            if value.ndim > 1 and domain in ("", "ai.onnx") and k in SCALAR_INPUTS.get(op, ()):
                return (
                    f"{op} {node.name} input {k} ({constant}) has shape {list(value.shape)}: "
                    "not a scalar, which onnxruntime refuses to run"
                )
            # every other operand's rank must be known, the largest at least the constant's
            highest = -1
            for i, t in enumerate(inputs):
                if t and i != k:
                    r = rank(t)
                    if r is None:
                        highest = -2  # (every operand is still ranked, and cached, as before)
                    elif highest != -2 and r > highest:
                        highest = r
            if highest < value.ndim:
                return (
                    f"cannot prove that constant {constant} of shape {list(value.shape)} "
                    f"does not broadcast the result of {node.name}"
                )
        return ""

    def _opset(self, m: Match) -> str:
        reason = self._opset_of(m.rule)
        if reason:
            need = self._opset_reasons[(m.rule.name, self.graph.opset_version(""))][1]
            self.stats.opset_needed = max(self.stats.opset_needed, need)
        return reason

    def _compute(self, m: Match) -> None:
        call = m.rule.compute
        if call is None:
            self._plan_attrs(m)
            return
        # `Match.arg` / `Match.layout` spelled out over a per-rule plan (~1 µs an argument
        # less; a fold has seven or nine)
        attrs, tensors, facts = m.attrs, m.tensors, self.facts
        args = []
        for var, literal, layout_only in _arg_plan(m.rule, call):
            if var is None:
                args.append(literal)
            elif var in attrs:
                args.append(attrs[var])
            else:
                t = tensors.get(var)
                if t is None:
                    args.append(None)
                else:
                    args.append(facts.layout(t) if layout_only else facts.value(t))
        try:
            # A constant that comes out inf or NaN from finite ones (W·s past float32's range,
            # 0·inf) is no fold of the original, which computes finite values from small x:
            # numpy's floating-point flags refuse it without a pass over the result.
            result = call_raising(call.name, m, *args)
        except FloatingPointError as e:
            raise Refuse(f"{call.name}: {e} (the folded constant would not be finite)") from e
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != len(call.outputs):
            raise Refuse(f"{call.name} returned {len(result)} values for {len(call.outputs)} names")
        m.computed = dict(zip(call.outputs, result, strict=True))
        self._plan_attrs(m)

    def _plan_attrs(self, m: Match) -> None:
        m.replacement_attrs = [
            {key: self._attr_value(m, spec) for key, spec in pnode.attrs.items()}
            for pnode in m.rule.replacement.nodes
        ]

    def _schema_fit(self, m: Match) -> str:
        """Why a default-domain node of the replacement would not be valid at the model's
        opset ("" if none): an input or output count, a required input left out (`""`
        before a given input: `Sub(None, x)`, or an absent `optional(v)`), an attribute the
        op lacks there, a
        required one missing, an integer where the op takes a float (an int literal for a
        float attribute is made a float here). Run for rules of the user's files, after the
        computation: a rule written for another opset (ReduceSum's `axes` attribute at 13,
        Clip's min/max inputs at 10) made a model that neither onnx nor onnxruntime loads."""
        version = self.graph.opset_version("")
        defined: set[str] = set()
        for (op, domain, in_vars, out_vars, copy_from), attrs in zip(
            _replacement_plan(m.rule), m.replacement_attrs, strict=True
        ):
            if domain not in _ONNX:
                defined.update(out for out, _ in out_vars)
                continue
            info = _schema_info(op, version)
            if info is None:
                return f"{op} does not exist at opset {version}"
            min_in, max_in, min_out, max_out, kinds, required, optional = info
            present = [
                i
                for i, v in enumerate(in_vars)
                if v
                and (v in defined or m.tensors.get(v) or isinstance(m.computed.get(v), np.ndarray))
            ]
            count = present[-1] + 1 if present else 0
            if not min_in <= count <= max_in:
                return f"{op} takes {min_in}..{max_in} inputs at opset {version}, the rule gives {count}"
            # an input left out ("", from `None` or an absent optional(v)) before a given one
            # must be optional: Sub("", x) is a model neither onnx nor onnxruntime loads
            left_out = [i for i in range(count) if i not in present and i not in optional]
            if left_out:
                return f"{op} input {left_out[0]} is required at opset {version}, the rule leaves it out"
            if not min_out <= len(out_vars) <= max_out:
                return f"{op} has {min_out}..{max_out} outputs at opset {version}, the rule names {len(out_vars)}"
            given = {k for k, v in attrs.items() if v is not None}
            if copy_from:
                source = m.node_of(copy_from)
                if source is not None:
                    given |= {a.name for a in source.attribute} - set(attrs)
            for key in sorted(given):
                kind = kinds.get(key)
                if kind is None:
                    return f"{op} has no attribute {key} at opset {version}"
                if key not in attrs:
                    continue  # copied from a matched node as it was
                value = attrs[key]
                if kind == _FLOAT_KIND and isinstance(value, int) and _is_int(value):
                    attrs[key] = float(value)
                elif kind == _FLOATS_KIND and isinstance(value, list) and all(map(_is_int, value)):
                    attrs[key] = [float(v) for v in value]
                elif not _fits(kind, value):
                    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                    return f"{op} attribute {key} is {_KIND_NAMES[kind]}, the rule gives {shown}"
            missing = sorted(required - given)
            if missing:
                return f"{op} needs attribute {missing[0]} at opset {version}"
            defined.update(out for out, _ in out_vars)
        return ""

    def _type_fit(self, m: Match) -> str:
        """Why the replacement's output would not have the element type and shape of the
        output it replaces ("" if it has, or where either is unknown): ONNX type inference of
        the replacement nodes alone, fed the types the model's inference gives their inputs.
        Run for rules of the user's files (`y = Cast(x, to=7)` for a float y made a model no
        runtime loads; a Flatten for a Relu changed an output's shape)."""
        from graphopt.analysis.shapes import shape_facts

        root = m.tensors.get(m.rule.replacement.output)
        if self._shapes is None:
            self.facts.write_held()  # (inference reads small constants' values)
            self._shapes = shape_facts(self.graph, self.ctx)
        facts = self._shapes
        want = facts.dtype(root) if root else None
        if not want or root is None:
            return ""
        got = _inferred_type(m, facts, self.graph, self._inferred)
        if got is None:
            return ""
        dtype, shape = got
        if dtype and dtype != want:
            return (
                f"the replacement makes {root} {onnx.TensorProto.DataType.Name(dtype)}, "
                f"it is {onnx.TensorProto.DataType.Name(want)}"
            )
        before = facts.shape(root)
        if shape is None or before is None:
            return ""
        if len(shape) != len(before) or any(
            isinstance(a, int) and isinstance(b, int) and a != b
            for a, b in zip(shape, before, strict=True)
        ):
            return f"the replacement makes {root} of shape {list(shape)}, it is {list(before)}"
        return ""

    # ------------------------------------------------------------------ the edit
    def _apply(self, m: Match) -> None:
        graph = self.graph
        remove = m.removal or self.removal_set(m)[0]
        root = m.anchor
        hint = root.name
        names: dict[str, str] = {}
        io = self.facts.io
        old_inputs: set[str] = set()
        old_outputs: list[str] = []
        for n in remove:
            entry = io(n)
            old_inputs.update(entry[3])
            old_outputs.extend(entry[4])
        old_inputs.discard("")
        arrays = [(var, v) for var, v in m.computed.items() if isinstance(v, np.ndarray)]
        plan = _replacement_plan(m.rule)
        if arrays:
            # a constant the replacement still reads (x in (x·a)·b ⇒ x·c) is not spare
            still_read = {m.tensors.get(v) for _, _, in_vars, _, _ in plan for v in in_vars}
            spare = self._spare_constants(old_inputs - still_read, {n.name for n in remove})
            hold = self._holding and self._refoldable(m)
            for var, value in arrays:
                names[var] = self._store(f"{hint}_{var}", value, spare, hold)
        for node in remove:
            graph.remove_node(node)
        self._touched.extend(old_outputs)
        tensors = m.tensors
        for (op, domain, in_vars, out_vars, copy_from), attrs in zip(
            plan, m.replacement_attrs, strict=True
        ):
            inputs = [names.get(v) or tensors.get(v) or "" for v in in_vars]
            while inputs and not inputs[-1]:
                inputs.pop()
            outputs = []
            for out, is_root in out_vars:
                if is_root:
                    outputs.append(tensors[out] or "")
                else:
                    names[out] = graph.unique_name(f"{hint}_{out}")
                    outputs.append(names[out])
            node = onnx.NodeProto()  # built directly: onnx.helper.make_node costs ~10x more
            copied = False
            name = hint
            if copy_from:
                source = m.node_of(copy_from)
                if source is not None:
                    _copy_attributes(node, source)  # first: it copies into an empty node
                    copied = True
                    # The node it stands for (Conv + BN ⇒ Conv): that node's name, as
                    # onnxruntime's and onnxoptimizer's fusions keep the Conv's; a user's
                    # keep_nodes or a TensorRT layer name still finds it.
                    if any(n is source for n in remove):
                        name = source.name
            node.op_type = op
            node.name = name
            node.input.extend(inputs)
            node.output.extend(outputs)
            if domain:
                node.domain = domain
                self._import_domain(domain)
            for key, value in attrs.items():
                _set_attr(node, key, value, copied)
            graph.add_node(node, (tuple(inputs), tuple(outputs)))
            self._added.append(node.name)
            if m.rule.rematches:
                self._made_by[node.name] = (m.rule.name, id(node))
            self._touched.extend(outputs)
        self._drop_dead_constants(old_inputs)

    def _spare_constants(self, tensors: Iterable[str], removed: set[str]) -> _SpareConstants:
        """Constant tensors only the removed nodes read: their storage can hold a computed
        constant of the same type and shape (saves two copies of a weight). Checked when one
        is taken (`_SpareConstants.take`): a fold needs one or two of the five or so. A tensor
        a quantization annotation names (annotated, or a scale or zero point) is none: its
        values would change under the name the annotation gives."""
        graph = self.graph
        candidates: list[tuple[str, onnx.TensorProto]] = []
        initializers = graph.initializers
        noted = self._annotations()[0]
        for t in sorted(tensors):
            if t in noted:
                continue
            proto = initializers.get(t)
            if proto is None:
                node = graph.producer_node(t)
                if node is None or node.op_type != "Constant" or len(node.output) != 1:
                    continue
                proto = next((a.t for a in node.attribute if a.name == "value"), None)
                if proto is None:
                    continue
            candidates.append((t, proto))
        return _SpareConstants(graph, candidates, removed)

    def _refoldable(self, m: Match) -> bool:
        """Whether a node of the replacement that reads a computed constant may be rewritten
        again in this run by a fold from its input side: its op P and the op Q of the node
        making its first input are a target's root and the producer of a root operand (with a
        constant operand of its own) of a rule of this run, and that node reads a constant
        (Conv(a·x + b, W2): fold-input-add then fold-input-mul compute W2 twice more)."""
        sites = self._refold_sites
        if sites is None:
            sites = self._refold_sites = frozenset().union(*map(_refold_sites, self._rules))
        graph = self.graph
        producer, initializers = graph.producer, graph.initializers
        for op, first_var in _computed_readers(m.rule):
            first = m.tensors.get(first_var)
            p = producer.get(first) if first else None
            if p is None or (op, graph.nodes[p].op_type) not in sites:
                continue
            # an initializer among its inputs (a Constant node's value is not looked for: a
            # weight then is written twice, as it was)
            for t in graph.inputs_of(p):
                if t in initializers:
                    return True
        return False

    def _store(
        self, hint: str, value: np.ndarray, spare: _SpareConstants, hold: bool = False
    ) -> str:
        """Name of a constant holding `value`: a spare tensor overwritten in place, or a new
        initializer. `hold` (inside `run`, where `_refoldable`): a spare initializer is given
        `value` through `Facts.hold`, its bytes written when the run ends."""
        data_type = _TENSOR_TYPES.get(value.dtype, -1)
        taken = spare.take(data_type, value.shape) if value.dtype.kind == "f" else None
        if taken is not None:
            name, proto = taken
            if not (value.flags.c_contiguous and value.dtype.byteorder in _LITTLE):
                little = value.astype(value.dtype.newbyteorder("<"), copy=False)
                value = np.ascontiguousarray(little)
            if hold and name in self.graph.initializers:
                self.facts.hold(name, proto, value)
                return name
            data = value.tobytes()  # what a computation returns: one copy
            # what passes remember of its data is stale; given the bytes, CSE's content key is
            # taken from them instead of from a copy read back later
            if name in self.graph.initializers:
                self.graph.write_raw_data(name, data)
            else:  # a Constant node's tensor (no constants-to-initializers ran before)
                clear_typed_data(proto)
                proto.raw_data = data
            self.facts.forget(name)
            return name
        return self.graph.add_initializer(hint, value)

    def _attr_value(self, m: Match, spec: Any) -> Any:
        if not isinstance(spec, AttrRef):
            return spec
        if spec.name in m.computed:
            return _python(m.computed[spec.name])
        if spec.name in m.attrs:
            return m.attrs[spec.name]
        value = m.value(spec.name)
        if value is None:
            raise Refuse(f"attribute source {spec.name} is not a constant")
        return _python(value)

    def _import_domain(self, domain: str) -> None:
        if domain in self.graph.opset:
            return
        self.graph.model.opset_import.append(onnx.helper.make_opsetid(domain, 1))
        self.graph.opset[domain] = 1

    def _annotations(self) -> tuple[set[str], dict[str, list[str]]]:
        """The graph's `annotated_names()` and `annotation_parameter_owners()`, read once a run:
        a rewrite changes no quantization annotation (it renames no tensor; the commit after
        the run drops those of tensors gone), and each read walks every annotation (one a fold
        made fold-batchnorm over 1000 annotated Conv+BN pairs 0.3 s -> 17 s)."""
        notes = self._notes
        if notes is None:
            graph = self.graph
            notes = self._notes = (graph.annotated_names(), graph.annotation_parameter_owners())
        return notes

    def _drop_dead_constants(self, tensors: Iterable[str]) -> None:
        """Remove the constants among `tensors` that nothing reads any more, but those a
        quantization annotation names as a scale or zero point (`annotation_parameters`: the
        annotation reads them, as `eliminate-dead-code` keeps them)."""
        graph = self.graph
        consumers, initializers, producer = graph.consumers, graph.initializers, graph.producer
        dead = [
            t
            for t in tensors
            # not still read, nor produced by nothing (a removed node's output)
            if not consumers.get(t)
            and (t in initializers or t in producer)
            and not graph.is_graph_output(t)
            and not graph.is_graph_input(t)
        ]
        owners = self._annotations()[1] if dead else None
        if owners:  # (each asked before any goes)
            dead = [t for t in dead if not graph.keeps_annotation_parameter(t, owners)]
        for t in dead:
            if t in initializers:
                graph.remove_initializer(t)
                self.facts.forget(t)
                continue
            node = graph.producer_node(t)
            if node is not None and node.op_type == "Constant" and len(node.output) == 1:
                graph.remove_node(node)
                self.facts.forget(t)


class _SpareConstants:
    """Candidate constants (name order) whose storage a computed constant may take over.

    `take(data_type, shape)` returns the last candidate in name order that has that type and
    shape, is read only by the removed nodes, is no graph input or output, and holds its data
    inline under its own name (or None); it is not offered again. Only the candidates looked
    at are checked: a Conv+BN fold takes W and one of the five [C] tensors.
    """

    def __init__(
        self, graph: Graph, candidates: list[tuple[str, onnx.TensorProto]], removed: set[str]
    ):
        self.graph = graph
        self.candidates = candidates
        self.removed = removed

    def take(self, data_type: int, shape: tuple[int, ...]) -> tuple[str, onnx.TensorProto] | None:
        candidates = self.candidates
        for i in range(len(candidates) - 1, -1, -1):
            t, proto = candidates[i]
            if proto.data_type != data_type or tuple(proto.dims[:]) != shape:
                continue  # may suit another computed constant
            if self._usable(t, proto):
                del candidates[i]
                return t, proto
            del candidates[i]  # unusable for any constant
        return None

    def _usable(self, t: str, proto: onnx.TensorProto) -> bool:
        graph = self.graph
        users = graph.consumers.get(t)
        if users and not self.removed.issuperset(users):
            return False
        if graph.is_graph_input(t) or graph.is_graph_output(t):
            return False
        return proto.data_location != onnx.TensorProto.EXTERNAL and proto.name in ("", t)


# numpy dtype → ONNX data type of the computed constants `_store` may write over a spare one.
_TENSOR_TYPES: dict[np.dtype, int] = {
    np.dtype(np.float32): onnx.TensorProto.FLOAT,
    np.dtype(np.float64): onnx.TensorProto.DOUBLE,
    np.dtype(np.float16): onnx.TensorProto.FLOAT16,
}
# numpy byte orders that are little-endian here ("=" is native; `_TENSOR_TYPES` has no "|")
_LITTLE = ("<", "=") if sys.byteorder == "little" else ("<",)
_ONNX = ("", "ai.onnx")
_CONTRIB = "com.microsoft"


def root_kinds(rule: Rule, pattern: Pattern) -> frozenset[str]:
    """What a match needs to feed the pattern's root: "#const" for constant operands, the op
    of each operand another pattern node produces (a cheap necessary condition, cached)."""
    cached = pattern.__dict__.get("_root_kinds")
    if cached is None:
        producers = pattern.producers()
        need = set()
        for op in pattern.root.inputs:
            if isinstance(op, Literal):
                need.add("#const")
            elif isinstance(op, Var):
                if op.name in producers:
                    need.add(pattern.nodes[producers[op.name]].op)
                elif op.name in rule.constant_vars and not op.optional:
                    need.add("#const")
        cached = frozenset(need)
        pattern.__dict__["_root_kinds"] = cached
    return cached


def _computed_readers(rule: Rule) -> tuple[tuple[str, str], ...]:
    """(op, first input variable) of each replacement node that reads a constant the rule's
    computation makes, its first input not being one (cached on the rule)."""
    cached = rule.__dict__.get("_computed_readers")
    if cached is None:
        made = set(rule.compute.outputs) if rule.compute else set()
        cached = tuple(
            (op, in_vars[0])
            for op, _, in_vars, _, _ in _replacement_plan(rule)
            if in_vars and in_vars[0] and in_vars[0] not in made and made.intersection(in_vars)
        )
        rule.__dict__["_computed_readers"] = cached
    return cached


def _refold_sites(rule: Rule) -> frozenset[tuple[str, str]]:
    """(root op, op of the pattern node producing a root operand) of every target of `rule`
    whose producer node has an operand that must be constant (x·c before a Conv; cached on
    the rule)."""
    cached = rule.__dict__.get("_refold_sites")
    if cached is None:
        sites = set()
        for pattern in rule.targets:
            producers = pattern.producers()
            root = len(pattern.nodes) - 1
            for operand in pattern.root.inputs:
                q = producers.get(operand.name) if isinstance(operand, Var) else None
                if q is None or q == root:
                    continue
                node = pattern.nodes[q]
                if any(needs_constant(o, rule.constant_vars, producers) for o in node.inputs):
                    sites.add((pattern.root.op, node.op))
        cached = rule.__dict__["_refold_sites"] = frozenset(sites)
    return cached


def _needs_by_op(rule: Rule) -> dict[str, list[frozenset[str]]]:
    """Anchor op → the `root_kinds` of each target rooted at it (cached on the rule)."""
    cached = rule.__dict__.get("_needs_by_op")
    if cached is None:
        cached = {}
        for pattern in rule.targets:
            needs = cached.setdefault(pattern.root.op, [])
            kinds = root_kinds(rule, pattern)
            if kinds not in needs:
                needs.append(kinds)
        rule.__dict__["_needs_by_op"] = cached
    return cached


def _targets(rule: Rule) -> list[tuple[Pattern, str, frozenset[str], CompiledTarget]]:
    """Each target of `rule` with its root op, `root_kinds` and compiled matcher (cached)."""
    cached = rule.__dict__.get("_targets")
    if cached is None:
        cached = [(p, p.root.op, root_kinds(rule, p), compiled(rule, p)) for p in rule.targets]
        rule.__dict__["_targets"] = cached
    return cached


def _replacement_plan(
    rule: Rule,
) -> list[tuple[str, str, list[str], list[tuple[str, bool]], str | None]]:
    """Per replacement node: op, domain, input variables, (output, is the target's output),
    the variable whose producer's attributes it copies (cached on the rule)."""
    cached = rule.__dict__.get("_replacement_plan")
    if cached is None:
        out_var = rule.replacement.output
        cached = []
        for pnode in rule.replacement.nodes:
            in_vars = []
            for op in pnode.inputs:
                # `None`: an input left out (Clip(x, None, hi)); "" binds to no tensor
                in_vars.append(op.name if isinstance(op, Var) else "")
            outs = [(out, out == out_var) for out in pnode.outputs]
            cached.append((pnode.op, pnode.domain, in_vars, outs, pnode.copy_attrs_from))
        rule.__dict__["_replacement_plan"] = cached
    return cached


def _arg_plan(rule: Rule, call: Call) -> list[tuple[str | None, Any, bool]]:
    """Per argument of the rule's computation `call`: (variable name or None for a literal,
    the literal, whether the computation reads only its dtype and shape) (cached on the rule)."""
    cached = rule.__dict__.get("_arg_plan")
    if cached is None:
        layout_only = LAYOUT_ONLY.get(call.name, ())
        cached = [
            (a.name, None, i in layout_only) if isinstance(a, Var) else (None, a, False)
            for i, a in enumerate(call.args)
        ]
        rule.__dict__["_arg_plan"] = cached
    return cached


def _inferred_type(
    m: Match, facts: Any, graph: Graph, cache: dict[bytes, Any] | None = None
) -> tuple[int, tuple[Any, ...] | None] | None:
    """(element type, shape) ONNX type inference gives the replacement's output from the
    types of its inputs in `facts` (small constants with their values, larger ones by type and
    shape); None when an input's type is unknown or inference fails. `cache`: results by the
    replacement model's bytes (the same rule on inputs of the same types infers the same)."""
    from onnx import helper, numpy_helper

    inputs: list[onnx.ValueInfoProto] = []
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    seen: set[str] = set()
    for (op, domain, in_vars, out_vars, copy_from), attrs in zip(
        _replacement_plan(m.rule), m.replacement_attrs, strict=True
    ):
        names = []
        for v in in_vars:
            names.append(v)
            if not v or v in seen:
                continue
            seen.add(v)
            value = m.computed.get(v)
            t = m.tensors.get(v)
            if not isinstance(value, np.ndarray) and t and graph.is_constant(t):
                small = m.facts.value(t)
                value = small if small is not None and small.size <= 64 else None
            if isinstance(value, np.ndarray) and value.size <= 64:
                inits.append(numpy_helper.from_array(value, v))
                continue
            if isinstance(value, np.ndarray):  # a computed weight: inference reads its type
                dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
                inputs.append(helper.make_tensor_value_info(v, dtype, list(value.shape)))
                continue
            if not t:
                names[-1] = ""
                continue
            dtype = facts.dtype(t)
            if not dtype:
                return None
            shape = facts.shape(t)
            dims = (
                None if shape is None else [d if isinstance(d, int | str) else None for d in shape]
            )
            inputs.append(helper.make_tensor_value_info(v, dtype, dims))
        while names and not names[-1]:
            names.pop()
        node = onnx.NodeProto()
        source = m.node_of(copy_from) if copy_from else None
        if source is not None:
            node.attribute.extend(source.attribute)
        node.op_type, node.domain = op, domain
        node.input.extend(names)
        node.output.extend(out for out, _ in out_vars)
        seen.update(out for out, _ in out_vars)
        for key, value in attrs.items():
            _set_attr(node, key, value, source is not None)
        nodes.append(node)
    out = m.rule.replacement.output
    model = helper.make_model(
        helper.make_graph(nodes, "replacement", inputs, [], inits),
        opset_imports=list(graph.model.opset_import),
        ir_version=graph.model.ir_version or onnx.IR_VERSION,
    )
    key = model.SerializeToString() + out.encode()
    if cache is not None and key in cache:
        return cache[key]  # type: ignore[no-any-return]
    result = _infer_output(model, out)
    if cache is not None:
        cache[key] = result
    return result


def _infer_output(model: onnx.ModelProto, out: str) -> tuple[int, tuple[Any, ...] | None] | None:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError):
        return None
    for vi in inferred.graph.value_info:
        if vi.name == out and vi.type.HasField("tensor_type"):
            tt = vi.type.tensor_type
            if not tt.HasField("shape"):
                return tt.elem_type, None
            inferred_dims = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in tt.shape.dim
            )
            return tt.elem_type, inferred_dims
    return None


def _user_rule(rule: Rule) -> bool:
    """Whether `rule` comes from a user's file, not from the built-in `patterns/` (cached)."""
    cached = rule.__dict__.get("_user_rule")
    if cached is None:
        cached = Path(rule.source).resolve().parent != builtin_dir("patterns").resolve()
        rule.__dict__["_user_rule"] = cached
    return bool(cached)


_A = onnx.defs.OpSchema.AttrType
_FLOAT_KIND, _FLOATS_KIND, _INT_KIND = _A.FLOAT, _A.FLOATS, _A.INT
_FORMAL = onnx.defs.OpSchema.FormalParameterOption
# (op, opset) → (min inputs, max inputs, min outputs, max outputs, attribute → type,
# required attributes, positions of optional inputs), or None where the op does not exist at
# that opset
_SCHEMAS: dict[tuple[str, int], Any] = {}


def _schema_info(op: str, version: int) -> Any:
    key = (op, version)
    if key not in _SCHEMAS:
        try:
            schema = onnx.defs.get_schema(op, version, "")
        except onnx.defs.SchemaError:
            _SCHEMAS[key] = None
        else:
            kinds = {name: a.type for name, a in schema.attributes.items()}
            required = {name for name, a in schema.attributes.items() if a.required}
            optional = frozenset(
                i for i, p in enumerate(schema.inputs) if p.option == _FORMAL.Optional
            )
            _SCHEMAS[key] = (
                schema.min_input,
                schema.max_input,
                schema.min_output,
                schema.max_output,
                kinds,
                required,
                optional,
            )
    return _SCHEMAS[key]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


_KIND_NAMES = {
    _FLOAT_KIND: "a float",
    _INT_KIND: "an integer",
    _A.STRING: "a string",
    _FLOATS_KIND: "a list of floats",
    _A.INTS: "a list of integers",
    _A.STRINGS: "a list of strings",
}


def _fits(kind: Any, value: Any) -> bool:
    """Whether a rule's attribute value (a literal, a capture, a constant's value) has the
    schema's attribute type (int → float already made). Kinds without a Python spelling here
    (tensors, graphs) are taken as fitting."""
    if kind not in _KIND_NAMES:
        return True
    if kind == _FLOAT_KIND:
        return isinstance(value, float)
    if kind == _INT_KIND:
        return _is_int(value)
    if kind == _A.STRING:
        return isinstance(value, str)
    if not isinstance(value, list):
        return False
    if kind == _FLOATS_KIND:
        return all(_is_number(v) for v in value)
    if kind == _A.INTS:
        return all(_is_int(v) for v in value)
    return all(isinstance(v, str) for v in value)


def _kept_reads(rule: Rule) -> tuple[str, ...]:
    """`multi_use` variables the replacement reads before defining them itself (a rule may
    read only those of the target's intermediates; cached on the rule): the `_outside_reads`
    that `multi_use` lists (no computed name is a target's, `rules._validate_wiring`)."""
    cached = rule.__dict__.get("_kept_reads")
    if cached is None:
        multi_use = rule.multi_use
        kept = tuple(v for v in _outside_reads(rule) if v in multi_use)
        cached = rule.__dict__["_kept_reads"] = kept
    return cached


def _outside_reads(rule: Rule) -> tuple[str, ...]:
    """Variables the replacement reads that neither it nor the computation defines first: the
    tensors it takes from the graph around the match (cached on the rule)."""
    cached = rule.__dict__.get("_outside_reads")
    if cached is None:
        reads: dict[str, None] = {}
        defined = set(rule.compute.outputs) if rule.compute else set()
        for pnode in rule.replacement.nodes:
            for op in pnode.inputs:
                if isinstance(op, Var) and op.name not in defined:
                    reads[op.name] = None
            defined.update(pnode.outputs)
        cached = rule.__dict__["_outside_reads"] = tuple(reads)
    return cached


def _target_ops(rule: Rule) -> frozenset[str]:
    """Every op of every target of `rule` (cached on the rule)."""
    cached = rule.__dict__.get("_target_ops")
    if cached is None:
        cached = rule.__dict__["_target_ops"] = frozenset(
            n.op for t in rule.targets for n in t.nodes
        )
    return cached


# Every field of a NodeProto but its attributes (from the descriptor: a field a newer onnx adds
# is cleared too).
_NODE_FIELDS = tuple(f.name for f in onnx.NodeProto.DESCRIPTOR.fields if f.name != "attribute")


def _copy_attributes(empty: onnx.NodeProto, source: onnx.NodeProto) -> None:
    """`empty.attribute.extend(source.attribute)` for a new, empty node: by copying `source`
    whole and clearing every other field (~40 % less than extend's wrapper per attribute; a
    Conv has five), unless `source` carries fields this onnx does not know (copied too)."""
    if len(unknown_fields.UnknownFieldSet(source)):
        empty.attribute.extend(source.attribute)
        return
    empty.CopyFrom(source)
    for name in _NODE_FIELDS:
        empty.ClearField(name)


def _var_of(m: Match, tensor: str) -> str | None:
    for var, t in m.tensors.items():
        if t == tensor:
            return var
    return None


def _python(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.size == 1:
            return value.reshape(()).item()
        return value.ravel().tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# Attributes that are floats in every ONNX and com.microsoft op that has them: a rule may write
# `alpha=1` and still mean 1.0. (No schema lookup: loading ONNX's registry costs ~15 ms.)
FLOAT_ATTRIBUTES = frozenset({"alpha", "beta", "epsilon", "gamma", "lambd", "bias", "min", "max"})


def _set_attr(node: onnx.NodeProto, key: str, value: Any, replace: bool = True) -> None:
    """Set attribute `key` (replacing a copied one of that name when `replace`); None: a
    capture of an absent attribute, which the new node leaves out as well."""
    if replace:
        for i, a in enumerate(node.attribute):
            if a.name == key:
                del node.attribute[i]
                break
    if value is None:
        return  # captured from a node without it (and no schema default): left out too
    if key in FLOAT_ATTRIBUTES and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    A = onnx.AttributeProto
    if isinstance(value, float):
        node.attribute.add(name=key, type=A.FLOAT, f=value)
    elif isinstance(value, int) and not isinstance(value, bool):
        node.attribute.add(name=key, type=A.INT, i=value)
    elif isinstance(value, str):
        node.attribute.add(name=key, type=A.STRING, s=value.encode())
    else:
        node.attribute.append(onnx.helper.make_attribute(key, value))
