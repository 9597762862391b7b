"""Review 12 of the pattern engine as a user writing rule files: hostile rules and models.

Load-time refusals (one-line `PipelineError` naming file:line), run-time refusals with their
reason, and rewrites that onnxruntime runs with the original's outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.errors import PipelineError
from graphopt.passes.fuse_patterns import FusePatterns
from graphopt.patterns import load_rule_file, parse_rules
from tests.conftest import assert_same_outputs, needs_onnxruntime_opset_24
from tests.fusion_models import build, explained, feeds, ops, run_passes

OPSET13 = '<ir_version: 8, opset_import: ["" : 13]>'


def _run(tmp_path, rules: str, model: onnx.ModelProto):
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    return run_passes(model, [FusePatterns()], rule_files=[path])


def _rule(target: str, replacement: str, extra: str = "") -> str:
    """A one-rule file; `target`/`replacement` are block texts (indented 6)."""
    return (
        "rules:\n  - name: r\n    target: |\n"
        + "".join(f"      {ln}\n" for ln in target.splitlines())
        + extra
        + "    replacement: |\n"
        + "".join(f"      {ln}\n" for ln in replacement.splitlines())
    )


# ------------------------------------------------------------------ rule files refused at load


BAD_RULES = [
    # the replacement reads an intermediate the rewrite removes: a dangling input
    (_rule("t = Relu(x)\ny = Neg(t)", "y = Abs(t)"), 7, "which a target node produces"),
    # the replacement reads the output it replaces: a cycle
    (_rule("t = Relu(x)\ny = Neg(t)", "y = Abs(y)"), 7, "(a cycle)"),
    # a target node that does not feed the output is never matched: its output read as ""
    (_rule("a = Sigmoid(x)\ny = Neg(t)", "y = Add(a, t)"), 4, "does not feed the target's output"),
    # two replacement nodes writing y: the edit failed half-done (graph not in SSA form)
    (_rule("y = Neg(t)", "y = Relu(t)\ny = Neg(y)"), 7, "produces 'y' twice"),
    (_rule("y = Relu(x)\ny = Neg(x)", "y = Abs(x)"), 5, "the target produces 'y' twice"),
    # a key given twice: YAML keeps the last one
    (
        "rules:\n  - name: r\n    target: y = Relu(x)\n    target: y = Neg(x)\n"
        "    replacement: y = Abs(x)\n",
        4,
        "key 'target' is given twice (first at line 3)",
    ),
    ("rules: []\nrules: []\n", 2, "key 'rules' is given twice"),
    # a check or computation called with the wrong arity: a TypeError at the first match
    (
        _rule("y = Relu(x)", "y = Abs(x)", "    checks:\n      - rank(x)\n"),
        6,
        "check rank takes (var, expected), got 1 argument(s)",
    ),
    (
        _rule("y = Conv(x, W)", "y = Conv(x, W2)", "    compute: W2 = fold_batchnorm_conv(W)\n"),
        5,
        "computation fold_batchnorm_conv takes (w, b, gamma, beta, mean, var, eps",
    ),
    # approx() of a name: a ValueError traceback
    (_rule("y = Add(x, approx(a, 1))", "y = Abs(x)"), 4, "`approx(value, rtol)` takes two numbers"),
    # a complex number as an attribute: accepted, then failed when the node was built
    (_rule("y = Relu(x)", "y = Elu(x, alpha=(-8) ** (1/3))"), 6, "must be a literal"),
    ("macros:\n  F(a, a): [Relu(a)]\nrules: []\n", 2, "macro parameter 'a' is given twice"),
    (_rule("y = LeakyRelu(x, alpha=1, alpha=2)", "y = Abs(x)"), 4, "alpha= is given twice"),
    ("rules:\n  - name: ''\n    target: y = Relu(x)\n    replacement: y = Abs(x)\n", 2, "empty"),
    (
        _rule("t = Relu(x)\ny = Neg(t)", "y = Abs(x)", "    multi_use: [s]\n"),
        2,
        "multi_use names 's', no intermediate of the target; valid: t",
    ),
    (
        _rule(
            "y = Conv(x, W)",
            "y = Conv(x, W)",
            "    compute: x = fold_batchnorm_conv(W, W, W, W, W, W, W)\n",
        ),
        5,
        "computed name 'x' is also a name of the target",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_RULES)
def test_a_broken_rule_file_is_one_line_naming_file_and_line(text, line, message):
    with pytest.raises(PipelineError) as e:
        parse_rules(text, "mine.yaml")
    text_of = str(e.value)
    assert "\n" not in text_of
    assert text_of.startswith(f"mine.yaml:{line}:"), text_of
    assert message in text_of, text_of


@pytest.mark.parametrize(
    ("target", "replacement", "line", "message"),
    [
        ("y = Rleu(x)", "y = Abs(x)", 4, "Rleu is no ONNX op (did you mean Relu?)"),
        ("y = Relu(x)", "y = LeakyRelu(x, beta=1)", 6, "LeakyRelu has no attribute 'beta' in any"),
        ("y = Relu(x, alpha=a)", "y = Abs(x)", 4, "Relu has no attribute 'alpha'"),
    ],
)
def test_a_misspelt_op_or_attribute_in_a_users_file_is_refused(
    tmp_path, target, replacement, line, message
):
    # it never matched (a target) or made a model onnx refuses (a replacement), without a word
    path = tmp_path / "mine.yaml"
    path.write_text(_rule(target, replacement))
    with pytest.raises(PipelineError) as e:
        load_rule_file(path)
    assert str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert message in str(e.value)


@pytest.mark.parametrize("literal", ["10 ** 10 ** 10", "[1] * 10 ** 9"])
def test_a_huge_literal_is_refused_at_once(literal):
    # the parent computed 10**10**10 as an exact integer (without end) and [1]*10**9 as a list
    with pytest.raises(PipelineError, match=r"mine.yaml:4: "):
        parse_rules(_rule(f"y = Add(x, {literal})", "y = Abs(x)"), "mine.yaml")


def test_integer_arithmetic_stays_integer_and_float_arithmetic_float():
    (rule,) = parse_rules(_rule("y = Relu(x)", "y = Elu(x, alpha=1/4)"), "mine.yaml")
    assert rule.replacement.nodes[0].attrs == {"alpha": 0.25}
    (rule,) = parse_rules(_rule("y = MaxPool(x, kernel_shape=[2*2, 3-1])", "y = Abs(x)"), "m")
    assert rule.targets[0].nodes[0].attrs == {"kernel_shape": [4, 2]}


# ------------------------------------------------------------------ what the engine emits


def test_none_in_a_replacement_leaves_the_input_out(tmp_path):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) {{
          lo = Constant<value = float {{0.25}}>()
          y = Max(x, lo)
        }}"""
    )
    rules = _rule("y = Max(x, lo)", "y = Clip(x, lo, None)", "    checks: [scalar(lo)]\n")
    out, _ = _run(tmp_path, rules, model)
    assert ops(out) == ["Clip"]
    assert list(next(n for n in out.graph.node if n.op_type == "Clip").input) == ["x", "lo"]
    assert_same_outputs(model, out, feeds(model))


def test_an_absent_attribute_captured_stays_absent(tmp_path):
    # kernel_shape has no schema default: the capture is None, which the parent tried to set
    model = build(
        f"""{OPSET13}
        g (float[1,2,5,5] x) => (float[1,2,5,5] y) <float[2,2,1,1] W = {{0.5, -1.0, 0.25, 2.0}}> {{
          c = Conv(x, W)
          y = Relu(c)
        }}"""
    )
    rules = _rule(
        "y = Relu(Conv(x, W, kernel_shape=ks))",
        "c = Conv(x, W, kernel_shape=ks)\ny = LeakyRelu(c, alpha=0.0)",
    )
    out, _ = _run(tmp_path, rules, model)
    assert ops(out) == ["Conv", "LeakyRelu"]
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    assert [a.name for a in conv.attribute] == []
    assert_same_outputs(model, out, feeds(model))


RELU = f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) {{
          y = Relu(x)
        }}"""


@pytest.mark.parametrize(
    ("replacement", "reason"),
    [
        ("y = Clip(x, min=0.0)", "Clip has no attribute min at opset 13"),  # an opset-6 one
        ("y = Clip(x, x, x, x)", "Clip takes 1..3 inputs at opset 13, the rule gives 4"),
        ("y = Cast(x, to=7)", "the replacement makes y INT64, it is FLOAT"),
        ("f = Flatten(x, axis=0)\ny = Abs(f)", "the replacement makes y of shape [1, 16]"),
    ],
)
def test_a_replacement_invalid_at_the_models_opset_or_of_another_type_is_refused(
    tmp_path, replacement, reason
):
    model = build(RELU)
    out, report = _run(tmp_path, _rule("y = Relu(x)", replacement), model)
    assert ops(out) == ["Relu"]
    (refusal,) = explained(report, "r", "refused")
    assert reason in refusal, refusal
    assert_same_outputs(model, out, feeds(model))


def test_an_attribute_of_an_older_opset_is_refused(tmp_path):
    # ReduceSum's axes became an input at opset 13
    model = build(
        f"""{OPSET13}
        g (float[4,8] x) => (float[2,8] y) {{
          a, b = Split<axis=0>(x)
          y = Add(b, a)
        }}"""
    )
    rules = _rule("p, q = Split(x, axis=0)\ny = Add(p, q)", "y = ReduceSum(x, axes=[0])")
    out, report = _run(tmp_path, rules, model)
    assert ops(out) == ["Split", "Add"]
    assert explained(report, "r", "refused") == ["ReduceSum has no attribute axes at opset 13"]


def test_an_integer_literal_for_a_float_attribute_is_written_as_a_float(tmp_path):
    model = build(RELU)
    out, _ = _run(
        tmp_path, _rule("y = Relu(x)", "c = Constant(value_float=0)\ny = Max(x, c)"), model
    )
    assert ops(out) == ["Max"]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("outside", [True, False])
def test_a_multi_use_intermediate_the_replacement_reads_keeps_its_producer(tmp_path, outside):
    extra, outs = ("z = Abs(t)", "float[2,8] y, float[2,8] z") if outside else ("", "float[2,8] y")
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => ({outs}) {{
          t = Relu(x)
          y = Neg(t)
          {extra}
        }}"""
    )
    rules = _rule("t = Relu(x)\ny = Neg(t)", "a = Abs(t)\ny = Neg(a)", "    multi_use: [t]\n")
    out, _ = _run(tmp_path, rules, model)
    assert ops(out).count("Relu") == 1
    assert_same_outputs(model, out, feeds(model))


NEGS = f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) {{
          t = Relu(x)
          y = Neg(t)
        }}"""


def test_a_rule_whose_replacement_matches_its_target_rewrites_each_node_once(tmp_path):
    # y = Neg(t) ⇒ three Negs: the parent rewrote its own result on each of the 8 sweeps
    # (3^8 Negs); the identity rule was 'applied' 8 times to one node
    model = build(NEGS)
    out, report = _run(tmp_path, _rule("y = Neg(t)", "a = Neg(t)\nb = Neg(a)\ny = Neg(b)"), model)
    assert ops(out) == ["Relu", "Neg", "Neg", "Neg"]
    assert len(explained(report, "r", "applied")) == 1
    assert_same_outputs(model, out, feeds(model))
    out, report = _run(tmp_path, _rule("y = Neg(t)", "y = Neg(t)"), model)
    assert ops(out) == ["Relu", "Neg"]
    assert len(explained(report, "r", "applied")) == 1


# ------------------------------------------------------------------ behaviour that was right


def test_an_intermediate_read_inside_an_if_body_is_not_removed(tmp_path):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x, bool c) => (float[2,8] y, float[2,8] z) {{
          s = Sigmoid(x)
          y = Mul(x, s)
          z = If(c) <then_branch = g1 () => (float[2,8] o1) {{ o1 = Neg(s) }},
                     else_branch = g2 () => (float[2,8] o2) {{ o2 = Abs(s) }}>
        }}"""
    )
    rules = _rule("y = Mul(x, Sigmoid(x))", "y = com.microsoft.QuickGelu(x, alpha=1.0)")
    out, report = _run(tmp_path, rules, model)
    assert ops(out) == ["Sigmoid", "Mul", "If"]
    assert explained(report, "r", "refused") == ["intermediate s is also used by If_2"]
    x = np.linspace(-3, 3, 16, dtype=np.float32).reshape(2, 8)
    for c in (True, False):
        assert_same_outputs(model, out, {"x": x, "c": np.array(c)})


def test_a_user_rule_applies_inside_an_if_body(tmp_path):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x, bool c) => (float[2,8] z) {{
          z = If(c) <then_branch = g1 () => (float[2,8] o1) {{ s = Sigmoid(x)
                                                             o1 = Mul(s, x) }},
                     else_branch = g2 () => (float[2,8] o2) {{ o2 = Abs(x) }}>
        }}"""
    )
    rules = _rule("y = Mul(x, Sigmoid(x))", "y = com.microsoft.QuickGelu(x, alpha=1.0)")
    out, _ = _run(tmp_path, rules, model)
    then = next(a.g for a in out.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in then.node] == ["QuickGelu"]
    x = np.linspace(-3, 3, 16, dtype=np.float32).reshape(2, 8)
    for c in (True, False):
        assert_same_outputs(model, out, {"x": x, "c": np.array(c)})


@pytest.mark.parametrize(
    ("graph", "fused"),
    [
        ("r = Relu(x)\n n = Neg(w)\n y = Sum(n, x, r)", True),  # 3 operands in any order
        ("r = Relu(x)\n n = Neg(w)\n y = Sum(x, r, n)", True),
        ("r = Relu(w)\n n = Neg(w)\n y = Sum(n, x, r)", False),  # a is two tensors
    ],
)
def test_commutative_operands_in_any_order_and_a_repeated_variable(tmp_path, graph, fused):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x, float[2,8] w) => (float[2,8] y) {{
          {graph}
        }}"""
    )
    rules = _rule("y = Sum(Relu(a), Neg(b), a)", "t = Relu(a)\nu = Sub(t, b)\ny = Add(u, a)")
    out, _ = _run(tmp_path, rules, model)
    assert (ops(out) == ["Relu", "Sub", "Add"]) is fused
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    ("attr", "fused"), [("", True), ("<alpha = 0.01>", True), ("<alpha = 0.2>", False)]
)
def test_an_attribute_constraint_takes_the_schema_default_when_absent(tmp_path, attr, fused):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) {{
          y = LeakyRelu{attr}(x)
        }}"""
    )
    rules = _rule("y = LeakyRelu(x, alpha=0.01)", "i = Identity(x)\ny = LeakyRelu(i, alpha=0.01)")
    out, _ = _run(tmp_path, rules, model)
    assert (ops(out) == ["Identity", "LeakyRelu"]) is fused
    assert_same_outputs(model, out, feeds(model))


def test_a_custom_domain_target_and_a_second_output_used_elsewhere(tmp_path):
    model = build(
        """<ir_version: 8, opset_import: ["" : 13, "com.microsoft": 1]>
        g (float[2,8] x) => (float[2,8] y) {
          t = com.microsoft.QuickGelu<alpha=1.0>(x)
          y = Neg(t)
        }"""
    )
    rules = _rule(
        "y = Neg(com.microsoft.QuickGelu(x, alpha=1.0))",
        "s = Sigmoid(x)\nm = Mul(x, s)\ny = Neg(m)",
    )
    out, _ = _run(tmp_path, rules, model)
    assert ops(out) == ["Sigmoid", "Mul", "Neg"]
    assert_same_outputs(model, out, feeds(model))
    topk = build(
        f"""{OPSET13}
        g (float[4,8] x) => (float[4,2] y, int64[4,2] i) <int64[1] k = {{2}}> {{
          v, i = TopK(x, k)
          y = Relu(v)
        }}"""
    )
    out, report = _run(tmp_path, _rule("y = Relu(TopK(x, k))", "y = Neg(x)"), topk)
    assert ops(out) == ["TopK", "Relu"]
    assert explained(report, "r", "refused") == ["intermediate i is also used by the graph outputs"]


NEG_RELU = (
    "y = Neg(Relu(x))",
    "r = Relu(x)\na = Sub(r, r)\ny = Sub(a, r)",
)  # −relu x = (r − r) − r


def test_new_tensor_names_do_not_collide_with_existing_ones(tmp_path):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y, float[2,8] Neg_2_a) {{
          Neg_2_a = Sin(x)
          t = Relu(Neg_2_a)
          y = Neg(t)
        }}"""
    )
    out, _ = _run(tmp_path, _rule(*NEG_RELU), model)
    assert ops(out) == ["Sin", "Relu", "Sub", "Sub"]
    assert len({o for n in out.graph.node for o in n.output}) == 4
    assert_same_outputs(model, out, feeds(model))


def test_new_names_in_a_body_do_not_shadow_the_outer_scope(tmp_path):
    outer = "\n".join(f"Neg_{i}_r = Sin(x)\nNeg_{i}_a = Cos(x)" for i in range(4))
    names = ", ".join(f"float[2,8] Neg_{i}_{v}" for i in range(4) for v in "ra")
    model = build(
        f"""{OPSET13}
        g (float[2,8] x, bool c) => (float[2,8] z, {names}) {{
          {outer}
          z = If(c) <then_branch = g1 () => (float[2,8] o1) {{ t = Relu(x)
                                                             o1 = Neg(t) }},
                     else_branch = g2 () => (float[2,8] o2) {{ o2 = Abs(x) }}>
        }}"""
    )
    out, _ = _run(tmp_path, _rule(*NEG_RELU), model)
    then = next(a.g for a in out.graph.node[-1].attribute if a.name == "then_branch")
    assert [n.op_type for n in then.node] == ["Relu", "Sub", "Sub"]
    outer_names = {o for n in out.graph.node for o in n.output}
    assert not outer_names & {o for n in then.node for o in n.output}
    x = np.linspace(-3, 3, 16, dtype=np.float32).reshape(2, 8)
    for c in (True, False):
        assert_same_outputs(model, out, {"x": x, "c": np.array(c)})


def test_a_user_rule_applies_inside_a_loop_body(tmp_path):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x, int64 n) => (float[2,8] z) {{
          t = Constant<value = bool {{1}}>()
          z = Loop(n, t, x) <body = b (int64 i, bool c, float[2,8] a) => (bool co, float[2,8] ao) {{
             co = Identity(c)
             s = Sigmoid(a)
             ao = Mul(a, s)
          }}>
        }}"""
    )
    rules = _rule("y = Mul(x, Sigmoid(x))", "y = com.microsoft.QuickGelu(x, alpha=1.0)")
    out, _ = _run(tmp_path, rules, model)
    body = next(a.g for a in out.graph.node[-1].attribute if a.name == "body")
    assert [n.op_type for n in body.node] == ["Identity", "QuickGelu"]
    x = np.linspace(-3, 3, 16, dtype=np.float32).reshape(2, 8)
    assert_same_outputs(model, out, {"x": x, "n": np.array(3, np.int64)})


def test_optional_inputs_absent_in_the_middle_and_a_literal_on_an_overridable_constant(tmp_path):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) <float hi = {{0.5}}> {{
          c = Clip(x, , hi)
          y = Neg(c)
        }}"""
    )
    rules = _rule("y = Neg(Clip(x, optional(lo), optional(hi)))", "n = Neg(x)\ny = Max(n, Neg(hi))")
    out, _ = _run(tmp_path, rules, model)
    assert ops(out) == ["Neg", "Neg", "Max"]
    assert_same_outputs(model, out, feeds(model))
    # k is a graph input with a default: not the constant 3 the target needs
    overridable = onnx.parser.parse_model(
        f"""{OPSET13}
        g (float[2,8] x, float[1] k) => (float[2,8] y) <float[1] k = {{3.0}}> {{
          y = Add(x, k)
        }}"""
    )
    out, _ = _run(tmp_path, _rule("y = Add(x, 3)", "a = Relu(x)\ny = Max(a, x)"), overridable)
    assert ops(out) == ["Add"]


@needs_onnxruntime_opset_24
def test_a_replacement_of_a_newer_opset_waits_for_upgrade_opset(tmp_path):
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) {{
          s = Sigmoid(x)
          y = Mul(x, s)
        }}"""
    )
    rules = _rule("y = Mul(x, Sigmoid(x))", "y = Swish(x)")
    out, report = _run(tmp_path, rules, model)
    assert ops(out) == ["Sigmoid", "Mul"]
    assert explained(report, "r", "refused") == ["Swish needs opset 24, the model has 13"]
    path = tmp_path / "rules.yaml"
    out, _ = run_passes(model, [FusePatterns()], rule_files=[path], upgrade_opset=True)
    assert ops(out) == ["Swish"]
    assert_same_outputs(model, out, feeds(model))


def test_rules_that_undo_each_other_stop_at_max_sweeps_with_a_warning(tmp_path, caplog):
    rules = (
        _rule("y = Relu(x)", "c = Constant(value_float=0)\ny = Max(x, c)")
        + "  - name: back\n    target: y = Max(x, 0)\n    replacement: y = Relu(x)\n"
    )
    model = build(RELU)
    with caplog.at_level("WARNING", logger="graphopt.patterns"):
        out, report = _run(tmp_path, rules, model)
    assert len(explained(report, "r", "applied")) == 4  # sweeps 1, 3, 5, 7
    assert len(explained(report, "back", "applied")) == 4
    assert any("still applied in the last of 8 sweeps" in r.message for r in caplog.records)
    assert_same_outputs(model, out, feeds(model))


def test_a_constant_of_several_elements_for_a_float_attribute_is_refused(tmp_path):
    # alpha=a of a [2] constant became a FLOATS attribute: a model onnx refuses
    model = build(
        f"""{OPSET13}
        g (float[2,2] x) => (float[2,2] y) <float[2] a = {{0.2, 0.3}}, float[1] b = {{0.5}}> {{
          t = Mul(x, a)
          u = Add(t, b)
          y = Clip(u, , )
        }}"""
    )
    rules = _rule(
        "y = Clip(Add(Mul(x, a), b))",
        "h = HardSigmoid(x, alpha=a, beta=b)\ny = Identity(h)",
        "    checks:\n      - float_constant(a, b)\n",
    )
    out, report = _run(tmp_path, rules, model)
    assert ops(out) == ["Mul", "Add", "Clip"]
    (reason,) = explained(report, "r", "refused")
    assert reason.startswith("HardSigmoid attribute alpha is a float, the rule gives [0.2"), reason
    assert_same_outputs(model, out, feeds(model))


def test_a_call_split_by_a_flow_list_says_how_to_write_it():
    text = _rule("y = Relu(x)", "y = Abs(x)", "    checks: [scalar(x, x)]\n")
    with pytest.raises(PipelineError, match=r"^mine.yaml:5: .* a `\[...\]` list splits a call"):
        parse_rules(text, "mine.yaml")
