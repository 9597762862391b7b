"""Adversarial review of the pattern engine and user rule files (H158).

1. An infinite literal (`inf`, `1e400`) in a target matched every constant: its tolerance
   1e-7 + rtol·|inf| is inf, and |v − inf| ≤ inf holds for any v (`Min(x, inf) ⇒ x` rewrote
   Min(x, 0.5)), while inf itself (|inf − inf| is NaN) matched nothing. The same in attribute
   constraints (`alpha=inf` matched alpha=0.3).
2. Integer attribute constraints were compared with the float tolerance 1e-5·|want|:
   `starts=[100000]` matched a Slice's 100001.
3. An integer attribute literal outside int64 in a replacement (`axis=10**23` spelt out) was a
   PassError from `ValueError: Value out of range` at the first match, not a load error.
4. A replacement that leaves out a required input before a given one (`Sub(lo, x)` with an
   absent `optional(lo)`, or `Sum(None, x)`) made a node with input "" that onnxruntime
   rejects ("input 0 is marked single but has an empty string"); the match is refused now.
5. A rule whose replacement holds a match of its target at a node other than its last
   (`t = Clip(x, lo, hi); y = Identity(t)` for Clip) was not flagged `rematches`: every sweep
   rewrote the new Clip again, up to max_sweeps (8 Identities and a warning).
6. A variable the target leaves free could be bound to a tensor a matched node makes
   (`Mul(Relu(x), z)` at Mul(r, r): z is r); the rewrite removed that node and the replacement
   read r, which nothing produced any more (onnxruntime: "Node input 'r' is not a graph input,
   initializer, or output of a previous node"). Refused now.
7. Macro alternatives multiply without a bound: a target with ten nested calls of a
   three-body macro is 59049 targets (minutes to load, then tried at every anchor). More than
   256 is a PipelineError naming the file and line now (the built-in rules need 21).
8. A float16 constant matched a literal anywhere within one float16 ulp of it, not only the
   literal as float16 holds it: `Mul(x, 1) ⇒ x` rewrote Mul(x, 1.000977), 2050 → 2048 at
   x = 2048.
9. A target whose nodes read each other in a circle (`a = Relu(b)`, `b = Relu(a)`, or
   `a = Relu(a)`) loaded, and the matcher recursed without end (PassError: RecursionError at
   the first anchor); so did a target chain of ~250 nodes. Both are load errors now (a
   cycle; more than 64 nodes).
10. `approx(1, inf)` (or 1e400) loaded and matched every constant; `approx(1, -1)` and a NaN
    literal (`inf - inf`) loaded and matched none. Load errors now.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.errors import PipelineError
from graphopt.patterns.rules import parse_rules
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops


def _optimize(tmp_path: Path, model: onnx.ModelProto, rules: str, **options) -> onnx.ModelProto:
    (tmp_path / "r.yaml").write_text(rules)
    (tmp_path / "p.yaml").write_text("rules: [r.yaml]\npasses: [fuse-patterns]\n")
    out = graphopt.optimize(model, str(tmp_path / "p.yaml"), **options)
    onnx.checker.check_model(out, full_check=True)
    return out


def _min_model(c: float) -> onnx.ModelProto:
    return build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y) { y = Min(x, c) }""",
        {"c": np.array([c], np.float32)},
    )


MIN_INF = """
rules:
  - name: min-inf
    target: y = Min(x, {literal})
    replacement: y = Identity(x)
"""


@pytest.mark.parametrize("literal", ["inf", "1e400", "approx(inf, 0.1)"])
@pytest.mark.parametrize("rule_kernels", [True, False])
@pytest.mark.parametrize("c", [0.5, -np.inf, 3.4e38])
def test_an_infinite_literal_matches_no_finite_constant(tmp_path, literal, rule_kernels, c):
    model = _min_model(c)
    out = _optimize(tmp_path, model, MIN_INF.format(literal=literal), rule_kernels=rule_kernels)
    assert ops(out) == ["Min"]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("rule_kernels", [True, False])
def test_an_infinite_literal_still_matches_the_same_infinity(tmp_path, rule_kernels):
    model = _min_model(np.inf)
    out = _optimize(tmp_path, model, MIN_INF.format(literal="inf"), rule_kernels=rule_kernels)
    assert ops(out) == ["Identity"]
    assert_same_outputs(model, out, feeds(model))


def test_an_infinite_attribute_constraint_matches_no_finite_value(tmp_path):
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y) { y = LeakyRelu<alpha=0.3>(x) }"""
    )
    rules = """
rules:
  - name: leaky-inf
    target: y = LeakyRelu(x, alpha=inf)
    replacement: y = Relu(x)
"""
    out = _optimize(tmp_path, model, rules)
    assert ops(out) == ["LeakyRelu"]
    assert_same_outputs(model, out, feeds(model))


def test_an_integer_attribute_constraint_is_exact(tmp_path):
    """Slice-1 (opset 9) of [100001, 100003) is not the rule's [100000, 100002): the same shape,
    other elements."""
    model = build(
        """<ir_version: 4, opset_import: ["" : 9]>
        g (float[1,100003] x) => (float[1,2] y) {
          y = Slice<axes = [1], starts = [100001], ends = [100003]>(x)
        }"""
    )
    rules = """
rules:
  - name: slice-known
    target: y = Slice(x, axes=[1], starts=[100000], ends=[100002])
    replacement: y = Slice(x, axes=[1], starts=[100000], ends=[100002])
"""
    out = _optimize(tmp_path, model, rules)
    starts = [list(a.ints) for a in out.graph.node[0].attribute if a.name == "starts"]
    assert starts == [[100001]]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("value", ["100000000000000000000000", "[1, -9223372036854775809]"])
def test_an_attribute_outside_int64_is_a_load_error(tmp_path, value):
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y) { y = Flatten(x) }"""
    )
    rules = (
        "rules:\n  - name: big\n    target: y = Flatten(x, axis=a)\n"
        f"    replacement: y = Flatten(x, axis={value})\n"
    )
    with pytest.raises(PipelineError, match=r"r\.yaml:4: attribute axis= holds an integer outside"):
        _optimize(tmp_path, model, rules)


CLIP_NO_MIN = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3] x) => (float[2,3] y) { y = Clip(x, , c) }"""


@pytest.mark.parametrize(
    "replacement",
    ["y = Sub(lo, x)", "y = Gemm(lo, x)", "y = Sum(None, x)", "y = Clip(lo, x, hi)"],
)
def test_a_required_input_left_out_refuses_the_match(tmp_path, replacement):
    model = build(CLIP_NO_MIN, {"c": np.array(0.5, np.float32)})
    rules = f"""
rules:
  - name: clip-lo
    target: y = Clip(x, optional(lo), hi)
    replacement: {replacement}
"""
    out = _optimize(tmp_path, model, rules)
    assert ops(out) == ["Clip"]
    assert_same_outputs(model, out, feeds(model))


def test_an_optional_input_may_still_be_left_out(tmp_path):
    """Clip's min is optional: Clip(x, "", hi) from an absent `optional(lo)` is a valid node."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y) { t = Clip(x, , c)\n y = Identity(t) }""",
        {"c": np.array(0.5, np.float32)},
    )
    rules = """
rules:
  - name: clip-identity
    target: y = Identity(Clip(x, optional(lo), hi))
    replacement: y = Clip(x, lo, hi)
"""
    out = _optimize(tmp_path, model, rules)
    assert ops(out) == ["Clip"]
    assert list(out.graph.node[0].input) == ["x", "", "c"]
    assert_same_outputs(model, out, feeds(model))


def test_a_target_matched_inside_the_replacement_is_not_rewritten_again(tmp_path, caplog):
    model = build(CLIP_NO_MIN, {"c": np.array(0.5, np.float32)})
    rules = """
rules:
  - name: clip-identity-after
    target: y = Clip(x, optional(lo), hi)
    replacement: |
      t = Clip(x, lo, hi)
      y = Identity(t)
"""
    with caplog.at_level("WARNING"):
        out = _optimize(tmp_path, model, rules)
    assert ops(out) == ["Clip", "Identity"]
    assert "fixed point" not in caplog.text
    assert_same_outputs(model, out, feeds(model))


FREE_BOUND = {
    "Mul(Relu(x), z) at Mul(r, r)": (
        "r = Relu(x)\n y = Mul(r, r)",
        "y = Mul(Relu(x), z)",
        "t = Relu(x)\n      y = Mul(z, t)",
    ),
    "Add(Mul(Relu(x), w), z) at Add(m, r)": (
        "r = Relu(x)\n m = Mul(r, b)\n y = Add(m, r)",
        "y = Add(Mul(Relu(x), w), z)",
        "t = Relu(x)\n      u = Mul(t, w)\n      y = Add(z, u)",
    ),
    "Add(Mul(Relu(x), w), z) at Add(m, m)": (
        "r = Relu(x)\n m = Mul(r, b)\n y = Add(m, m)",
        "y = Add(Mul(Relu(x), w), z)",
        "t = Relu(x)\n      u = Mul(t, w)\n      y = Add(z, u)",
    ),
}


@pytest.mark.parametrize("rule_kernels", [True, False])
@pytest.mark.parametrize("case", sorted(FREE_BOUND))
def test_a_free_variable_bound_to_a_removed_tensor_refuses_the_match(tmp_path, case, rule_kernels):
    body, target, replacement = FREE_BOUND[case]
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x, float[2,3] b) => (float[2,3] y) {{ {body} }}"""
    )
    rules = f"""
rules:
  - name: free
    target: {target}
    replacement: |
      {replacement}
"""
    out = _optimize(tmp_path, model, rules, rule_kernels=rule_kernels)
    assert ops(out) == ops(model)
    assert_same_outputs(model, out, feeds(model))


def test_a_free_variable_bound_outside_the_match_still_applies(tmp_path):
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x, float[2,3] b) => (float[2,3] y) { r = Relu(x)\n y = Mul(r, b) }"""
    )
    rules = """
rules:
  - name: free
    target: y = Mul(Relu(x), z)
    replacement: |
      t = Relu(x)
      y = Mul(z, t)
"""
    out = _optimize(tmp_path, model, rules)
    assert [list(n.input) for n in out.graph.node][-1][0] == "b"
    assert_same_outputs(model, out, feeds(model))


def _nested_relu6(calls: int) -> str:
    expr = "x"
    for _ in range(calls):
        expr = f"Relu6(Add({expr}, 1))"
    return f"""macros:
  Relu6(a): ["Clip(a, 0, 6)", "Min(Relu(a), 6)", "Max(Min(a, 6), 0)"]
rules:
  - name: nested
    target: y = {expr}
    replacement: y = Relu(x)
"""


def test_a_target_of_too_many_macro_alternatives_is_a_load_error():
    with pytest.raises(PipelineError, match=r"^r\.yaml:5: the target expands to more than 256"):
        parse_rules(_nested_relu6(10), "r.yaml", onnx_names=True)


def test_a_target_of_243_macro_alternatives_loads():
    (rule,) = parse_rules(_nested_relu6(5), "r.yaml", onnx_names=True)
    assert len(rule.targets) == 3**5


F16_MUL = """<ir_version: 8, opset_import: ["" : 13]>
g (float16[3] x) => (float16[3] y) { y = Mul(x, c) }"""


@pytest.mark.parametrize("rule_kernels", [True, False])
@pytest.mark.parametrize("c", [1.0009766, 0.99951172])
def test_a_float16_constant_one_ulp_off_is_not_the_literal(tmp_path, c, rule_kernels):
    model = build(F16_MUL, {"c": np.array(c, np.float16)})
    assert float(np.float16(c)) != 1.0
    rules = (
        "rules:\n  - name: times-one\n    target: y = Mul(x, 1)\n    replacement: y = Identity(x)\n"
    )
    out = _optimize(tmp_path, model, rules, rule_kernels=rule_kernels)
    assert ops(out) == ["Mul"]
    inputs = {"x": np.array([2048, 1000, 3], np.float16)}
    assert_same_outputs(model, out, inputs)


@pytest.mark.parametrize("literal, c", [("1/6", 1 / 6), ("sqrt(2)/2", 2**-0.5), ("1", 1.0)])
def test_a_float16_constant_holding_the_literal_matches(tmp_path, literal, c):
    """float16 holds 1/6 as 0.16663 (2e-4 off) and 1/√2 as 0.70703: still the literal."""
    model = build(F16_MUL, {"c": np.array(c, np.float16)})
    rules = (
        f"rules:\n  - name: lit\n    target: y = Mul(x, {literal})\n"
        "    replacement: y = Neg(Neg(x))\n"  # only whether it matched is asserted
    )
    out = _optimize(tmp_path, model, rules)
    assert ops(out) == ["Neg", "Neg"]


CYCLES = {
    "two nodes": (
        "a = Relu(b)\n      b = Relu(a)\n      y = Add(a, b)",
        "y = Add(a, b)",
        "a, b",
        5,
    ),
    "one node": ("a = Relu(a)\n      y = Add(a, x)", "y = Add(a, x)", "a", 4),
}


@pytest.mark.parametrize("case", sorted(CYCLES))
def test_a_target_with_a_cycle_is_a_load_error(case):
    target, replacement, kept, line = CYCLES[case]
    text = f"""rules:
  - name: cycle
    target: |
      {target}
    replacement: {replacement}
    multi_use: [{kept}]
"""
    with pytest.raises(
        PipelineError, match=rf"^r\.yaml:{line}: the target's Relu reads 'a'.*a cycle"
    ):
        parse_rules(text, "r.yaml", onnx_names=True)


def _chain_rule(nodes: int) -> str:
    lines = ["a0 = Relu(x)"] + [f"a{i} = Relu(a{i - 1})" for i in range(1, nodes - 1)]
    lines.append(f"y = Relu(a{nodes - 2})")
    body = "".join(f"      {line}\n" for line in lines)
    return f"rules:\n  - name: chain\n    target: |\n{body}    replacement: y = Relu(x)\n"


def test_a_target_of_more_than_64_nodes_is_a_load_error():
    with pytest.raises(PipelineError, match=r"^r\.yaml:4: the target has 65 nodes, more than 64"):
        parse_rules(_chain_rule(65), "r.yaml", onnx_names=True)


def test_a_target_of_64_nodes_applies(tmp_path):
    body = "\n".join(["b0 = Relu(x)"] + [f"b{i} = Relu(b{i - 1})" for i in range(1, 63)])
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y) {{ {body}\n y = Relu(b62) }}"""
    )
    out = _optimize(tmp_path, model, _chain_rule(64))
    assert ops(out) == ["Relu"]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    "literal, message",
    [
        ("approx(1, inf)", r"rtol inf is not >= 0 and finite"),
        ("approx(1, 1e400)", r"rtol inf is not >= 0 and finite"),
        ("approx(1, -0.5)", r"rtol -0.5 is not >= 0 and finite"),
        ("inf - inf", r"a constant input is NaN"),
        ("approx(inf - inf, 0.1)", r"a constant input is NaN"),
    ],
)
def test_a_literal_that_matches_everything_or_nothing_is_a_load_error(literal, message):
    text = f"rules:\n  - name: a\n    target: y = Mul(x, {literal})\n    replacement: y = Identity(x)\n"
    with pytest.raises(PipelineError, match=r"^r\.yaml:3: .*" + message):
        parse_rules(text, "r.yaml", onnx_names=True)
