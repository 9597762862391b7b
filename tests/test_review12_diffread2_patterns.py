"""Review of 5bccf6d/89c6ed7/f71e2f3 (user rule files): the sweeps_exhausted warning, and rule
chains that the "not retried on the nodes it made" logic must not cut short.

The warning said "the result may not be a fixed point (do two rules undo each other?)" for any
run whose last allowed sweep applied a rule, also where what that sweep made can match no rule
(with `max_sweeps: 1`, every run that applied anything)."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt import optimize
from graphopt.errors import PipelineError
from graphopt.passes.fuse_patterns import FusePatterns
from graphopt.patterns import parse_rules
from tests.conftest import assert_same_outputs, ort_run
from tests.fusion_models import build, explained, feeds, ops, run_passes

OPSET13 = '<ir_version: 8, opset_import: ["" : 13]>'


def _run(tmp_path, rules: str, model, **options):
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    return run_passes(model, [FusePatterns(**options)], rule_files=[path])


def test_one_sweep_that_reached_a_fixed_point_gives_no_warning(tmp_path, caplog):
    # −(−x) ⇒ x: the one sweep leaves no Neg, so no rule can apply again (the parent warned
    # "do two rules undo each other?" and set sweeps_exhausted)
    rules = "rules:\n  - name: r\n    target: y = Neg(Neg(x))\n    replacement: y = Identity(x)\n"
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) {{
          e = Exp(x)
          a = Neg(e)
          b = Neg(a)
          y = Sqrt(b)
        }}"""
    )
    with caplog.at_level("WARNING", logger="graphopt.patterns"):
        out, report = _run(tmp_path, rules, model, max_sweeps=1)
    assert len(explained(report, "r", "applied")) == 1
    assert ops(out) == ["Exp", "Identity", "Sqrt"]
    assert not [r.message for r in caplog.records if "still applied" in r.message]
    assert_same_outputs(model, out, feeds(model))


def test_a_run_cut_short_by_max_sweeps_still_warns(tmp_path, caplog):
    # Relu ⇒ Max(x, 0) and back rewrite on every sweep: still warned
    rules = (
        "rules:\n  - name: r\n    target: y = Relu(x)\n    replacement: |\n"
        "      c = Constant(value_float=0)\n      y = Max(x, c)\n"
        "  - name: back\n    target: y = Max(x, 0)\n    replacement: y = Relu(x)\n"
    )
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) {{
          y = Relu(x)
        }}"""
    )
    with caplog.at_level("WARNING", logger="graphopt.patterns"):
        out, _ = _run(tmp_path, rules, model, max_sweeps=3)
    assert any("still applied in the last of 3 sweeps" in r.message for r in caplog.records)
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("op", ["Mul", "Add"])
def test_merge_chains_collapse_to_one_op(op, n):
    # merge-mul-mul / merge-add-add on x∘k0∘…∘k(n-1): each merge makes a node the next one
    # reads; none of them may be skipped as "a node the rule made"
    consts = ", ".join(f"float[1] k{i} = {{{1.5 + i}}}" for i in range(n))
    body = "\n".join(
        f"          v{i} = {op}({'e' if i == 0 else f'v{i - 1}'}, k{i})" for i in range(n)
    )
    model = build(
        f"""{OPSET13}
        g (float[2,8] x) => (float[2,8] y) <{consts}> {{
          e = Exp(x)
{body}
          y = Sqrt(v{n - 1})
        }}"""
    )
    out = optimize(model, "default")
    assert ops(out) == ["Exp", op, "Sqrt"]
    x = feeds(model)["x"]
    k = [1.5 + i for i in range(n)]
    want = np.sqrt(np.exp(x) * np.prod(k) if op == "Mul" else np.exp(x) + sum(k))
    np.testing.assert_allclose(ort_run(out, {"x": x})["y"], want, rtol=1e-5)
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("name", ["e", "pi", "inf"])
@pytest.mark.parametrize("where", ["target", "replacement", "compute"])
def test_a_tensor_named_like_a_constant_is_refused_in_words(tmp_path, name, where):
    # `e = Exp(x)` then `Neg(e)`: the read of e is the number 2.718..., so the parent said
    # "Exp does not feed the target's output 'y'" (target) or "a replacement cannot create
    # constants from literals" (replacement, compute)
    target = f"{name} = Exp(x)\ny = Neg({name})" if where == "target" else "y = Neg(Exp(x))"
    replacement = f"{name} = Exp(x)\ny = Neg({name})" if where == "replacement" else "y = Neg(x)"
    extra = ""
    if where == "compute":
        target = "y = Conv(x, W, B)"
        replacement = f"y = Conv(x, W, {name})"
        extra = f"    compute: W2, {name} = fold_affine_conv(W, B, W, W)\n"
    text = (
        "rules:\n  - name: r\n    target: |\n"
        + "".join(f"      {ln}\n" for ln in target.splitlines())
        + extra
        + "    replacement: |\n"
        + "".join(f"      {ln}\n" for ln in replacement.splitlines())
    )
    with pytest.raises(PipelineError, match=f"'{name}' is the number .* give the tensor another"):
        parse_rules(text, "r.yaml")


def test_built_in_rule_files_load_as_user_files(tmp_path):
    # every built-in rule, copied to a user's folder (so schema-checked at load), loads
    from graphopt._resources import builtin_dir
    from graphopt.patterns import load_rule_file

    for f in sorted(builtin_dir("patterns").glob("*.yaml")):
        copy = tmp_path / f.name
        copy.write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
        assert len(load_rule_file(copy)) == len(load_rule_file(f)) > 0
