"""Kernels: hand-written matchers for the hottest built-in rules, with the generic engine's answers.

A detector has dozens of Conv+BatchNormalization pairs (or, exported as Mul and Add, Conv·c + d:
ppocr_det's 28) and, in the PP and MobileNetV3 families, dozens of decomposed HardSwish chains
(layout_cdla: 94 of each). The generic engine spends most
of a rewrite interpreting the rule (closures per pattern operand, a `Match` built and checked
field by field); a kernel walks the same nodes in straight-line code.

`kernel(runner, rule, anchor name, anchor)` returns the `Match` the generic engine's first
accepted match at that anchor would be (same nodes, bindings, captured attributes; structure,
single use of intermediates, constness and the rule's checks all proven), ready for the
engine's own computation and edit; or `REFUSES` where it proves that the engine refuses the
anchor (every match it would find is refused, or its search fails two or more nodes deep: the
runner counts the refusal as the engine does); or None: "ask the generic engine", never "no
match". So a kernel can make the engine faster, never different. Every case it does not
recognize, and every refusal it does not prove, goes to the generic engine, which then says
why (`--explain` uses it only).

A kernel runs only while its rule is the built-in one it was written for: each kernel names
the digest of its rule (`rule_digest`: targets, checks, computation, replacement); an edited
rule file changes the digest, and the rule then runs through the generic engine until the
kernel is updated (a test compares the digests).

What it does not do: handle variants that are rare in exported models (the generic engine does
them), or any rule a user wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import onnx

from graphopt.patterns.engine import (
    Facts,
    Match,
    NodeIO,
    attr_mismatch,
    domain_version,
    literal_matches,
)
from graphopt.patterns.rules import Literal, Rule

if TYPE_CHECKING:
    from graphopt.patterns.rewrite import RuleRunner


class Refuses:
    """What a kernel returns where it proves that the generic engine, asked at the anchor,
    refuses it (a structural match every precondition of which fails, or a partial match that
    fails two or more nodes deep, which the engine counts as refused): the runner counts the
    refusal as the engine does and skips the engine."""

    def __repr__(self) -> str:
        return "REFUSES"


REFUSES = Refuses()

Kernel = Callable[["RuleRunner", Rule, str, onnx.NodeProto], "Match | Refuses | None"]

_ONNX = ("", "ai.onnx")


def rule_digest(rule: Rule) -> str:
    """A short digest of what `rule` matches, checks, computes and emits (not its name, doc or
    source position): a kernel is valid for a rule with this digest only. The line numbers the
    parser keeps on patterns, nodes and calls are left out, so a line added above the rule in
    its file (a macro alternative, another rule) does not turn its kernel off."""
    parts = (rule.targets, rule.checks, rule.compute, rule.replacement, sorted(rule.multi_use))
    return hashlib.sha256(repr(_unplaced(parts)).encode()).hexdigest()[:16]


def _unplaced(value: object) -> object:
    """`value` with every dataclass as (its type's name, its fields but `line`), recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: _unplaced(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name != "line"
        }
        return type(value).__name__, fields
    if isinstance(value, list | tuple):
        return type(value)(_unplaced(v) for v in value)
    if isinstance(value, dict):
        return {k: _unplaced(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------- Conv + BN


def fold_batchnorm_conv(
    runner: RuleRunner, rule: Rule, name: str, bn: onnx.NodeProto
) -> Match | None:
    """`fold-batchnorm-conv` at BatchNormalization `bn`:
    y = Conv(x, W, optional(B)); z = BatchNormalization(y, γ, β, μ, σ², epsilon=eps), every
    parameter a floating-point constant of one dtype, y read by the BN only, BN in inference
    mode with only its first output used."""
    graph, facts = runner.graph, runner.facts
    _, op, domain, inputs, outputs = facts.io(bn, name)
    if op != "BatchNormalization" or domain not in _ONNX:
        return None
    if len(inputs) != 5 or not all(inputs) or not outputs or not outputs[0]:
        return None
    if any(outputs[1:]) and graph.opset_version("") < 14:
        return None  # training mode (batchnorm_inference)
    consumers = graph.consumers
    for out in outputs[1:]:  # training-mode outputs must be unused
        if out and (consumers.get(out) or graph.is_graph_output(out)):
            return None
    y = inputs[0]
    producer = graph.producer.get(y)
    if producer is None:
        return None
    conv = graph.nodes[producer]
    _, conv_op, conv_domain, conv_inputs, conv_outputs = facts.io(conv, producer)
    if conv_op != "Conv" or conv_domain not in _ONNX or conv_outputs[0] != y:
        return None
    if not 2 <= len(conv_inputs) <= 3 or not conv_inputs[0] or not conv_inputs[1]:
        return None
    users = consumers.get(y)
    if users is None or users.keys() != {name} or graph.is_graph_output(y):
        return None  # y is read elsewhere: the engine refuses (or keeps it, multi_use)
    w = conv_inputs[1]
    b = conv_inputs[2] if len(conv_inputs) == 3 and conv_inputs[2] else None
    constants = (
        [w, inputs[1], inputs[2], inputs[3], inputs[4]] if b is None else [w, b, *inputs[1:]]
    )
    kinds = set()
    for t in constants:  # float_constant(W, B, gamma, beta, mean, var)
        dtype = facts.dtype(t)
        if dtype is None or dtype.kind != "f":
            return None
        kinds.add(dtype)
    if len(kinds) != 1:
        return None
    for a in bn.attribute[:]:  # batchnorm_inference(z)
        if (a.name == "training_mode" and a.i != 0) or (a.name == "spatial" and a.i != 1):
            return None
    pattern = rule.targets[0]
    attrs: dict[str, object] = {}
    if attr_mismatch(pattern.nodes[1], bn, attrs, domain_version(graph, domain)):
        return None
    # the bindings in the order the generic matcher makes them
    tensors: dict[str, str | None] = {
        "z": outputs[0],
        "y": y,
        "x": conv_inputs[0],
        "W": w,
        "B": b,
        "gamma": inputs[1],
        "beta": inputs[2],
        "mean": inputs[3],
        "var": inputs[4],
    }
    m = Match(rule, pattern, graph, facts, tensors, attrs, {1: bn, 0: conv})
    m.removal = [bn, conv]
    return m


# ---------------------------------------------------------------------------- Conv·c + d


def fold_scale_shift_conv(
    runner: RuleRunner, rule: Rule, name: str, add: onnx.NodeProto
) -> Match | None:
    """`fold-scale-shift-into-conv` at Add `add`: w = Add(Mul(Conv(x, W, optional(B),
    group=g), c), d), Mul and Add in either operand order, and every precondition of the
    engine (`RuleRunner._preconditions`: intermediates used only inside the match, the check
    float_constant(W, B, c, d)). c and d must be constants and y and z are node outputs, which
    no constant is: at most one operand order of each op can match, so the match found here
    is the engine's first."""
    graph, facts = runner.graph, runner.facts
    _, op, domain, inputs, outputs = facts.io(add, name)
    if op != "Add" or domain not in _ONNX or len(inputs) != 2 or not outputs or not outputs[0]:
        return None
    mul_io = _operand_of(runner, inputs, "Mul")
    if mul_io is None:
        return None
    (mul, _, _, mul_inputs, _), z, d = mul_io
    if len(mul_inputs) != 2:
        return None
    conv_io = _operand_of(runner, mul_inputs, "Conv")
    if conv_io is None:
        return None
    (conv, _, conv_domain, conv_inputs, _), y, c = conv_io
    if not 2 <= len(conv_inputs) <= 3 or not conv_inputs[0] or not conv_inputs[1]:
        return None
    w = conv_inputs[1]
    b = conv_inputs[2] if len(conv_inputs) == 3 and conv_inputs[2] else None
    if not graph.is_constant(w) or (b is not None and not graph.is_constant(b)):
        return None
    pattern = rule.targets[0]
    attrs: dict[str, object] = {}
    if attr_mismatch(pattern.nodes[0], conv, attrs, domain_version(graph, conv_domain)):
        return None
    tensors: dict[str, str | None] = {  # in the generic matcher's binding order
        "w": outputs[0],
        "z": z,
        "y": y,
        "x": conv_inputs[0],
        "W": w,
        "B": b,
        "c": c,
        "d": d,
    }
    m = Match(rule, pattern, graph, facts, tensors, attrs, {2: add, 1: mul, 0: conv})
    return None if runner._preconditions(m) else m


# ---------------------------------------------------------------------------- (x·c|x + c) → Conv


def fold_input_into_conv(
    runner: RuleRunner, rule: Rule, name: str, conv: onnx.NodeProto
) -> Match | Refuses | None:
    """`fold-input-add-into-conv` / `fold-input-mul-into-conv` at Conv `conv`: z = Conv(y, W,
    optional(B), group=g), y = Add(x, c) (or Mul(x, c)) in either operand order, and every
    precondition of the engine (`RuleRunner._preconditions`). PP-OCR det's affine blocks
    a·x + b before a 1×1 Conv (ppocr_det: 10 of each), and the refusals: a Conv whose input a
    Mul or Add makes of no constant (layout_cdla's 88 x·HardSigmoid(x) before a Conv) or a
    match the preconditions refuse (a padded Conv for x + c; y read elsewhere).

    The engine's search, once it has bound the Conv and the node making y (op and domain the
    pattern's, y its first output), fails two nodes deep whatever fails next: it counts the
    anchor refused. It tries the operand orders (x, c) = (first, second), then (second, first)
    where the operands differ; c, W and a present B must be constants. The first order that
    matches is its first match; where the preconditions refuse it and the other order also
    matches, the engine is asked (it may accept that one)."""
    graph, facts = runner.graph, runner.facts
    pattern = rule.targets[0]
    affine_p, conv_p = pattern.nodes
    # First what most Convs fail on, without building their `Facts.io` entry (a kernel runs at
    # every Conv of the first sweep): a node of the pattern's op making the data input.
    wiring = graph.inputs_of(name)
    p = graph.producer.get(wiring[0]) if wiring and wiring[0] else None
    if p is None or facts.op_of(graph.nodes[p])[0] != affine_p.op:
        return None
    _, op, domain, inputs, outputs = facts.io(conv, name)
    if op != "Conv" or domain not in _ONNX or not outputs or not outputs[0] or len(inputs) > 3:
        return None  # (engine: refused one node deep, which it does not count)
    attrs: dict[str, object] = {}
    if attr_mismatch(conv_p, conv, attrs, domain_version(graph, domain)):
        return None  # (a capture of the Conv's group never mismatches)
    entry = _producer_of(runner, inputs[0], affine_p.op)
    if entry is None:
        return None
    affine, affine_inputs = entry[0], entry[3]
    if len(affine_inputs) != 2:
        return None
    # two nodes deep: from here on the engine counts every failure as a refusal
    first, second = affine_inputs
    is_constant = graph.is_constant
    orders = []
    if first and second and is_constant(second):
        orders.append((first, second))
    if first != second and first and second and is_constant(first):
        orders.append((second, first))
    w = inputs[1] if len(inputs) > 1 else ""
    b = inputs[2] if len(inputs) == 3 and inputs[2] else None
    if not orders or not w or not is_constant(w) or (b is not None and not is_constant(b)):
        return REFUSES
    x, c = orders[0]
    tensors: dict[str, str | None] = {  # in the generic matcher's binding order
        "z": outputs[0],
        "y": inputs[0],
        "x": x,
        "c": c,
        "W": w,
        "B": b,
    }
    m = Match(rule, pattern, graph, facts, tensors, attrs, {1: conv, 0: affine})
    if runner._preconditions(m):
        return REFUSES if len(orders) == 1 else None
    return m


def _operand_of(
    runner: RuleRunner, inputs: tuple[str, ...], op: str
) -> tuple[NodeIO, str, str] | None:
    """For a commutative node with `inputs` (two, both given), the one operand order the
    pattern `op(…)`, constant can match: (`Facts.io` of the default-domain `op` node whose
    first output is one input, that input, the other input, a constant); else None."""
    if len(inputs) != 2 or not inputs[0] or not inputs[1]:
        return None
    is_constant = runner.graph.is_constant
    for produced, other in ((inputs[0], inputs[1]), (inputs[1], inputs[0])):
        entry = _producer_of(runner, produced, op)
        if entry is not None and is_constant(other):
            return entry, produced, other
    return None


# ---------------------------------------------------------------------------- HardSwish


def hardswish(runner: RuleRunner, rule: Rule, name: str, div: onnx.NodeProto) -> Match | None:
    """`hardswish` / `hardswish-via-hardsigmoid`, their first target, at Div `div`:
    y = Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6) (the form paddle2onnx and torch < opset 14
    export), Mul and Add in either operand order, the literals one-element float constants,
    and every precondition of the engine (`RuleRunner._preconditions`: intermediates used only
    inside the match, constants that do not raise the rank)."""
    graph, facts = runner.graph, runner.facts
    io = facts.io
    _, op, domain, inputs, outputs = io(div, name)
    if op != "Div" or domain not in _ONNX or len(inputs) != 2 or not outputs or not outputs[0]:
        return None
    pattern = rule.targets[0]
    add_p, clip_p, mul_p, div_p = pattern.nodes
    if not _literal(facts, inputs[1], div_p.inputs[1]):
        return None
    mul_io = _producer_of(runner, inputs[0], "Mul")
    if mul_io is None:
        return None
    mul, mul_inputs = mul_io[0], mul_io[3]
    if len(mul_inputs) != 2 or not all(mul_inputs):
        return None
    a, b = mul_inputs
    for x, clipped in ((a, b), (b, a)) if a != b else ((a, b),):
        clip_io = _producer_of(runner, clipped, "Clip")
        if clip_io is None:
            continue
        clip, clip_inputs = clip_io[0], clip_io[3]
        if len(clip_inputs) != 3 or not all(clip_inputs):
            continue
        if not _literal(facts, clip_inputs[1], clip_p.inputs[1]):
            continue
        if not _literal(facts, clip_inputs[2], clip_p.inputs[2]):
            continue
        add_io = _producer_of(runner, clip_inputs[0], "Add")
        if add_io is None:
            continue
        add, add_inputs = add_io[0], add_io[3]
        if len(add_inputs) != 2 or x not in add_inputs:
            continue
        three = add_inputs[1] if add_inputs[0] == x else add_inputs[0]
        if not _literal(facts, three, add_p.inputs[1]):
            continue
        tensors: dict[str, str | None] = {  # in the generic matcher's binding order
            div_p.outputs[0]: outputs[0],
            mul_p.outputs[0]: inputs[0],
            "x": x,
            clip_p.outputs[0]: clipped,
            add_p.outputs[0]: clip_inputs[0],
        }
        sites = [(0, three), (1, clip_inputs[1]), (1, clip_inputs[2]), (3, inputs[1])]
        m = Match(
            rule, pattern, graph, facts, tensors, {}, {3: div, 2: mul, 1: clip, 0: add}, sites
        )
        return None if runner._preconditions(m) else m
    return None


def _producer_of(runner: RuleRunner, tensor: str, op: str) -> NodeIO | None:
    """`Facts.io` of the default-domain `op` node whose first output is `tensor`, else None."""
    name = runner.graph.producer.get(tensor)
    if name is None:
        return None
    entry = runner.facts.io(runner.graph.nodes[name], name)
    _, node_op, domain, _, outputs = entry
    if node_op != op or domain not in _ONNX or outputs[0] != tensor:
        return None
    return entry


def _literal(facts: Facts, tensor: str, literal: object) -> bool:
    """`tensor` matches the pattern's Literal as the generic matcher compares them: a
    one-element float constant, `literal_matches` (within 1e-7 + rtol·|value|, or exactly for
    `approx(v, 0)`: relu6's floor; NaN matches nothing)."""
    assert isinstance(literal, Literal)
    value = facts.scalar(tensor)
    return value is not None and literal_matches(value, facts.dtype(tensor), literal)


KERNELS: dict[str, tuple[str, Kernel]] = {
    # rule name → (the digest of the built-in rule it was written for, kernel)
    "fold-batchnorm-conv": ("59cb66e4cf70ba5d", fold_batchnorm_conv),
    "fold-scale-shift-into-conv": ("1e42cf57221c8b6b", fold_scale_shift_conv),
    "fold-input-add-into-conv": ("4e59c0b1ff6e0348", fold_input_into_conv),
    "fold-input-mul-into-conv": ("9ef856104c1778cb", fold_input_into_conv),
    "hardswish": ("a6ceab7109e13777", hardswish),
    "hardswish-via-hardsigmoid": ("2146b8be538afdeb", hardswish),
}


def kernel_for(rule: Rule) -> Kernel | None:
    """The kernel of `rule` when it has one and the rule is the one it was written for."""
    entry = KERNELS.get(rule.name)
    if entry is None:
        return None
    cached = rule.__dict__.get("_kernel_digest")
    if cached is None:
        cached = rule.__dict__["_kernel_digest"] = rule_digest(rule)
    return entry[1] if cached == entry[0] else None
