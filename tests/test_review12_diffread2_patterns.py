"""Review of 5bccf6d/89c6ed7/f71e2f3 (user rule files): the sweeps_exhausted warning, and rule
chains that the "not retried on the nodes it made" logic must not cut short.

The warning said "the result may not be a fixed point (do two rules undo each other?)" for any
run whose last allowed sweep applied a rule, also where what that sweep made can match no rule
(with `max_sweeps: 1`, every run that applied anything)."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt import optimize
from graphopt.passes.fuse_patterns import FusePatterns
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
