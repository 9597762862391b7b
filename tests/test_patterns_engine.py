"""The pattern engine: rule files, matching (commutative, constants, optional inputs, single
use), multi-node replacements, refusals with reasons, user rule files from a pipeline YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.api import optimize_with_report
from graphopt.errors import PipelineError
from graphopt.passes.fuse_patterns import FusePatterns
from graphopt.patterns import parse_rules, rule_set, select
from graphopt.pipeline import load_pipeline, make_pipeline
from tests.conftest import assert_same_outputs, onnxruntime_loads_opset
from tests.fusion_models import build, explained, feeds, ops, rand, run_passes

QUICKGELU_RULE = """
rules:
  - name: my-silu
    doc: x·σ(x) ⇒ QuickGelu(x)
    target: y = Mul(x, Sigmoid(x))
    replacement: y = com.microsoft.QuickGelu(x, alpha=1.0)
"""


def _user_rules(tmp_path, text: str = QUICKGELU_RULE):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_commutative_operands_match_in_either_order(tmp_path):
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,8] x) => (float[2,8] y, float[2,8] z) {
          s = Sigmoid(x)
          y = Mul(s, x)
          t = Sigmoid(x)
          z = Mul(x, t)
        }"""
    )
    out, report = run_passes(model, [FusePatterns()], rule_files=[_user_rules(tmp_path)])
    assert ops(out) == ["com.microsoft.QuickGelu", "com.microsoft.QuickGelu"]
    assert len(explained(report, "my-silu", "applied")) == 2
    assert_same_outputs(model, out, feeds(model))


def test_same_variable_must_be_the_same_tensor(tmp_path):
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,8] x, float[2,8] w) => (float[2,8] y) {
          s = Sigmoid(w)
          y = Mul(x, s)
        }"""
    )
    out, _ = run_passes(model, [FusePatterns()], rule_files=[_user_rules(tmp_path)])
    assert ops(out) == ["Sigmoid", "Mul"]


@pytest.mark.parametrize(("three", "fused"), [(3.0, True), (3.0000002, True), (3.01, False)])
def test_constants_match_by_value_with_tolerance(three, fused):
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,3,3] x) => (float[1,4,3,3] y) {{
          t = Constant<value = float {{{three!r}}}>()
          a = Add(x, t)
          z = Constant<value = float {{0.0}}>()
          s = Constant<value = float {{6.0}}>()
          c = Clip(a, z, s)
          six = Constant<value = float {{6.0}}>()
          y = Div(c, six)
        }}"""
    )
    out, _ = run_passes(model, ["fuse-activations"])
    assert ops(out) == (["HardSigmoid"] if fused else ["Add", "Clip", "Div"])
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("explain", [False, True])  # the compiled matcher, the generic one
def test_a_nan_constant_matches_no_literal(explain):
    # |NaN - 3| > tolerance is False: a NaN once matched every literal, and x + NaN (NaN
    # everywhere) became HardSigmoid(x).
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,3,3] x) => (float[1,4,3,3] y) {
          t = Constant<value = float {nan}>()
          a = Add(x, t)
          z = Constant<value = float {0.0}>()
          s = Constant<value = float {6.0}>()
          c = Clip(a, z, s)
          y = Div(c, s)
        }"""
    )
    out, _ = optimize_with_report(
        model, make_pipeline("test", ["fuse-activations"]), explain=explain
    )
    assert ops(out) == ["Add", "Clip", "Div"]
    assert_same_outputs(model, out, feeds(model))


def test_constant_that_could_broadcast_is_refused_with_reason():
    # x has no declared rank, so a [1,1,1,1] constant might raise the result's rank.
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,3,3] x) => (float[1,4,3,3] y) {
          u = Identity(x)
          t = Constant<value = float[1,1,1,1] {3.0}>()
          a = Add(u, t)
          z = Constant<value = float {0.0}>()
          s = Constant<value = float {6.0}>()
          c = Clip(a, z, s)
          six = Constant<value = float {6.0}>()
          y = Div(c, six)
        }"""
    )
    model.graph.ClearField("value_info")
    out, report = run_passes(model, ["fuse-activations"])
    # Identity keeps the rank of the 4-D graph input, so the rank is proven and the rule applies.
    assert ops(out) == ["Identity", "HardSigmoid"]
    unknown = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,3,3] x, int64[2] shape) => (float[2,18] y) {
          u = Reshape(x, shape)
          t = Constant<value = float[1,1,1,1] {3.0}>()
          a = Add(u, t)
          z = Constant<value = float {0.0}>()
          s = Constant<value = float {6.0}>()
          c = Clip(a, z, s)
          six = Constant<value = float {6.0}>()
          y0 = Div(c, six)
          y = Reshape(y0, shape)
        }"""
    )
    out, report = run_passes(unknown, ["fuse-activations"])
    assert "HardSigmoid" not in ops(out)
    reasons = explained(report, "hardsigmoid", "refused")
    assert reasons and "broadcast" in reasons[0]


@pytest.mark.parametrize("explain", [False, True])  # the compiled matcher, the generic one
@pytest.mark.parametrize("add", ["Add(x, t)", "Add(t, x)"])
def test_constant_that_raises_the_rank_is_refused_in_either_operand_order(add, explain):
    # A [1,1,1,1,1] 3 makes the 4-D x's result 5-D: HardSigmoid(x) would change the output's
    # shape. With the constant first, the check once looked at x's position and let it apply.
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,3,4] x) => (float[1,1,2,3,4] y) {{
          t = Constant<value = float[1,1,1,1,1] {{3.0}}>()
          a = {add}
          z = Constant<value = float {{0.0}}>()
          s = Constant<value = float {{6.0}}>()
          c = Clip(a, z, s)
          y = Div(c, s)
        }}"""
    )
    out, report = optimize_with_report(
        model, make_pipeline("test", ["fuse-activations"]), explain=explain
    )
    assert "HardSigmoid" not in ops(out)
    assert_same_outputs(model, out, feeds(model))
    if explain:
        reasons = explained(report, "hardsigmoid", "refused")
        assert reasons and "cannot prove that constant t of shape [1, 1, 1, 1, 1]" in reasons[0]


def test_single_use_refusal_records_the_reason():
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,5,5] x) => (float[1,3,5,5] z, float[1,3,5,5] y) {
          y = Conv(x, W, B)
          z = BatchNormalization(y, s, b, m, v)
        }""",
        {"W": rand(3, 2, 1, 1), "B": rand(3), "s": rand(3), "b": rand(3), "m": rand(3),
         "v": rand(3, low=0.5, high=2.0)},
    )  # fmt: skip
    out, report = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv", "BatchNormalization"]
    reasons = explained(report, "fold-batchnorm-conv", "refused")
    assert reasons == ["intermediate y is also used by the graph outputs"]


def test_optional_input_absent_or_present():
    for bias in ("", ", B"):
        model = build(
            f"""<ir_version: 8, opset_import: ["" : 13]>
            g (float[1,2,5,5] x) => (float[1,3,5,5] z) {{
              y = Conv<pads = [1, 1, 1, 1]>(x, W{bias})
              z = BatchNormalization(y, s, b, m, v)
            }}""",
            {"W": rand(3, 2, 3, 3), "B": rand(3), "s": rand(3), "b": rand(3), "m": rand(3),
             "v": rand(3, low=0.5, high=2.0)},
        )  # fmt: skip
        out, _ = run_passes(model, ["fold-batchnorm"])
        assert ops(out) == ["Conv"]
        assert len(out.graph.node[0].input) == 3
        assert_same_outputs(model, out, feeds(model))


def test_multi_node_replacement_keeps_the_output_name():
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,4,4] x) => (float[1,3,4,4] out) {
          out = BatchNormalization(x, s, b, m, v)
        }""",
        {"s": rand(3), "b": rand(3), "m": rand(3), "v": rand(3, low=0.5, high=2.0)},
    )
    out, _ = run_passes(model, [FusePatterns(groups=["batchnorm-standalone"])])
    assert ops(out) == ["Mul", "Add"]
    assert out.graph.output[0].name == "out" and out.graph.node[-1].output[0] == "out"
    assert [t.dims for t in out.graph.initializer] == [[3, 1, 1], [3, 1, 1]]
    assert_same_outputs(model, out, feeds(model))


def test_attribute_constraints_use_schema_defaults():
    # HardSigmoid without attributes has alpha=0.2 (the default), not 1/6: not a HardSwish.
    model = build(
        """<ir_version: 8, opset_import: ["" : 14]>
        g (float[2,8] x) => (float[2,8] y, float[2,8] z) {
          h = HardSigmoid(x)
          y = Mul(x, h)
          k = HardSigmoid<alpha = 0.16666667>(x)
          z = Mul(x, k)
        }"""
    )
    out, _ = run_passes(model, ["fuse-activations"])
    assert ops(out) == ["HardSigmoid", "Mul", "HardSwish"]
    assert_same_outputs(model, out, feeds(model))


def test_user_rule_file_from_pipeline_yaml(tmp_path):
    rules = _user_rules(tmp_path)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(f"passes:\n  - fuse-patterns\nrules: [{rules.name}]\n")
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,8] x) => (float[2,8] y) {
          s = Sigmoid(x)
          y = Mul(x, s)
        }"""
    )
    import graphopt

    out = graphopt.optimize(model, str(pipe))
    assert ops(out) == ["com.microsoft.QuickGelu"]
    assert load_pipeline(str(pipe)).rule_files == [rules]


def _optimize_explained(model: onnx.ModelProto, tmp_path, capsys) -> tuple[str, Path]:
    """`graphopt optimize in.onnx -o out.onnx --explain`: what it printed, and out.onnx."""
    from graphopt.cli import main

    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, src)
    assert main(["optimize", str(src), "-o", str(dst), "--explain"]) == 0
    return capsys.readouterr().out, dst


def test_explain_cli_lists_applied_and_refused(tmp_path, capsys):
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,5,5] x) => (float[1,3,5,5] z, float[1,3,5,5] w2) {
          y = Conv(x, W)
          z = BatchNormalization(y, s, b, m, v)
          y2 = Conv(x, W2)
          w = BatchNormalization(y2, s, b, m, v)
          extra = Relu(y2)
          w2 = Add(w, extra)
        }""",
        {"W": rand(3, 2, 1, 1), "W2": rand(3, 2, 1, 1), "s": rand(3), "b": rand(3), "m": rand(3),
         "v": rand(3, low=0.5, high=2.0)},
    )  # fmt: skip
    text, _ = _optimize_explained(model, tmp_path, capsys)
    assert "rule fold-batchnorm-conv: applied 1, refused 1" in text
    assert "refused at BatchNormalization_3: intermediate y2 is also used by Relu_4" in text


def test_explain_lists_a_refusal_once_when_the_fusions_run_again(tmp_path, capsys):
    """The clean-up removes a no-op Transpose, so the default pipeline runs its fusions again
    and meets the same refusal: --explain reports it once."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,5,5] x) => (float[1,3,5,5] w2) {
          y2 = Conv(x, W2)
          w = BatchNormalization(y2, s, b, m, v)
          extra = Relu(y2)
          t = Transpose <perm = [0, 1, 2, 3]> (extra)
          w2 = Add(w, t)
        }""",
        {"W2": rand(3, 2, 1, 1), "s": rand(3), "b": rand(3), "m": rand(3),
         "v": rand(3, low=0.5, high=2.0)},
    )  # fmt: skip
    text, dst = _optimize_explained(model, tmp_path, capsys)
    assert "Transpose" not in {n.op_type for n in onnx.load(dst).graph.node}
    assert "rule fold-batchnorm-conv: applied 0, refused 1" in text
    assert text.count("intermediate y2 is also used by Relu") == 1


# ---------------------------------------------------------------------------- rule files


def test_builtin_rules_load_and_groups_exist():
    rules = rule_set()
    groups = {r.group for r in rules}
    assert {"batchnorm", "affine", "activations", "ort-contrib"} <= groups
    hardswish = next(r for r in rules if r.name == "hardswish")
    assert len(hardswish.targets) > 10  # macros expanded: Clip / Min / Max forms of relu6
    assert all(r.doc for r in rules), "every built-in rule states its rewrite"
    with pytest.raises(PipelineError, match="unknown rule or group 'nope'"):
        select(rules, ["nope"])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("rules:\n  - name: a\n    target: y = Relu(x\n    replacement: y = Relu(x)\n", 3, "never closed"),
        ("rules:\n  - name: a\n    target: y = Relu(x)\n    replacement: y = Relu(x)\n    checks:\n      - bogus(x)\n", 6, "unknown check 'bogus'"),
        ("rules:\n  - name: a\n    target: y = Relu(x)\n    replacement: y = Relu(q)\n", 4, "does not bind"),
        ("rules:\n  - name: a\n    target: y = Relu(x)\n    replacement: z = Relu(x)\n", 4, "must produce 'y'"),
        ("rules:\n  - name: a\n    tagret: y = Relu(x)\n", 3, "unknown rule key 'tagret'"),
        ("rules:\n  - name: a\n    target: y = Relu(x)\n    replacement: y = Relu(x)\n  - name: a\n    target: y = Relu(x)\n    replacement: y = Relu(x)\n", 5, "duplicate rule name"),
        ("rules:\n  - name: a\n    target: |\n      t = Sigmoid(x)\n      y = Mul(x, t, 1 +)\n    replacement: y = Relu(x)\n", 5, "invalid syntax"),
        ("macros:\n  M(a):\n    - M(a)\nrules:\n  - name: a\n    target: y = M(x)\n    replacement: y = Relu(x)\n", 6, "does a macro call itself?"),  # RecursionError before
    ],
)  # fmt: skip
def test_bad_rule_file_names_file_and_line(text, line, message):
    with pytest.raises(PipelineError) as e:
        parse_rules(text, "my_rules.yaml")
    assert str(e.value).startswith(f"my_rules.yaml:{line}:"), str(e.value)
    assert message in str(e.value)


def test_bad_rule_file_in_pipeline_fails_at_start(tmp_path):
    rules = _user_rules(tmp_path, "rules:\n  - name: a\n    target: y = Relu(x)\n")
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(f"passes: [fuse-patterns]\nrules: [{rules.name}]\n")
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu(x) }"""
    )
    import graphopt

    with pytest.raises(PipelineError, match=r"rules.yaml:2: rule needs a `replacement:`"):
        graphopt.optimize(model, str(pipe))


def test_rules_apply_to_a_fixed_point():
    # Mul(Mul(Mul(x, a), b), c) needs two merges; the second only exists after the first.
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x) => (float[2,3] y) {
          p = Mul(x, a)
          q = Mul(p, b)
          y = Mul(q, c)
        }""",
        {"a": np.float32(2.0), "b": rand(3), "c": rand(2, 1)},
    )
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Mul"]
    assert_same_outputs(model, out, feeds(model))


# ---------------------------------------------------------------------------- golden examples


def _golden() -> list[dict]:
    import yaml

    from graphopt._resources import builtin_dir

    examples = []
    for path in sorted((builtin_dir("patterns") / "examples").glob("*.yaml")):
        examples.extend(yaml.safe_load(path.read_text())["examples"])
    return examples


@pytest.mark.parametrize("example", _golden(), ids=lambda e: e["name"])
def test_golden_examples(example):
    import onnx.parser

    model = onnx.parser.parse_model(example["before"])
    onnx.checker.check_model(model, full_check=True)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if not onnxruntime_loads_opset(opset):
        pytest.skip(f"the installed onnxruntime loads no opset {opset}")
    out, report = run_passes(model, example["passes"])
    assert ops(out) == example["after"]
    applied = {rule for rule, _node, outcome, _ in report.explain if outcome == "applied"}
    assert set(example["rules"]) <= applied
    assert_same_outputs(model, out, feeds(model))


def test_number_matches_only_floating_point_constants():
    # An integer Add(x, 3) → Clip → Div is integer arithmetic, not a HardSigmoid.
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (int32[4] x) => (int32[4] y) {
          t = Constant<value = int32 {3}>()
          a = Add(x, t)
          z = Constant<value = int32 {0}>()
          s = Constant<value = int32 {6}>()
          c = Clip(a, z, s)
          y = Div(c, s)
        }"""
    )
    out, _ = run_passes(model, ["fuse-activations"])
    assert ops(out) == ["Add", "Clip", "Div"]


def test_multi_use_lets_a_shared_intermediate_stay(tmp_path):
    text = QUICKGELU_RULE.replace(
        "    replacement:", "    multi_use: [s]\n    replacement:"
    ).replace(
        "target: y = Mul(x, Sigmoid(x))", "target: |\n      s = Sigmoid(x)\n      y = Mul(x, s)"
    )
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,8] x) => (float[2,8] y, float[2,8] s) {
          s = Sigmoid(x)
          y = Mul(x, s)
        }"""
    )
    # Without multi_use the Sigmoid (a graph output) blocks the rewrite ...
    out, report = run_passes(model, [FusePatterns()], rule_files=[_user_rules(tmp_path)])
    assert ops(out) == ["Sigmoid", "Mul"]
    assert explained(report, "my-silu", "refused") == [
        "intermediate s is also used by the graph outputs"
    ]
    # ... with it, the Sigmoid stays for its other reader and the Mul is replaced.
    other = tmp_path / "other"
    other.mkdir()
    out, _ = run_passes(model, [FusePatterns()], rule_files=[_user_rules(other, text)])
    assert sorted(ops(out)) == ["Sigmoid", "com.microsoft.QuickGelu"]
    assert_same_outputs(model, out, feeds(model))


def test_first_opset_table_agrees_with_onnx_schemas():
    from graphopt.patterns.engine import FIRST_OPSET

    for op, version in FIRST_OPSET.items():
        assert onnx.defs.has(op, max_inclusive_version=version, domain=""), op
        assert version == 1 or not onnx.defs.has(
            op, max_inclusive_version=version - 1, domain=""
        ), op


@pytest.mark.parametrize(
    ("flatten", "proven"),
    [
        ("f = Reshape(x, shape)", True),  # the output's rank is the target's length
        ("f = Flatten<axis = 1>(x)", True),  # always 2
        ("f = Reshape(x, runtime)", False),  # a target of unknown length
    ],
)
def test_rank_of_a_reshape_or_flatten_output_is_proven(flatten, proven):
    # capspot 0.1.0's siamese head (tf2onnx, no value_info): |Reshape(a, [-1, 512]) -
    # Reshape(b, [-1, 512])| · W + c stayed MatMul + Add with batch 1 fixed (onnxsim: Gemm)
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N,2,2,8] x, int64[2] runtime) => (float[N,4] z) {{
          shape = Constant<value = int64[2] {{-1, 32}}>()
          {flatten}
          a = Abs(f)
          y = MatMul(a, W)
          z = Add(y, c)
        }}""",
        {"W": rand(32, 4), "c": rand(4)},
    )
    model.graph.ClearField("value_info")
    out, report = run_passes(model, ["constants-to-initializers", "fold-batchnorm"])
    assert ("Gemm" in ops(out)) == proven, ops(out)
    if proven:
        feed = {"x": rand(3, 2, 2, 8), "runtime": np.array([-1, 32], np.int64)}
        assert_same_outputs(model, out, feed)
    else:
        refused = explained(report, "fuse-matmul-add-into-gemm", "refused")
        assert refused == ["rank: cannot prove the rank of a"]
