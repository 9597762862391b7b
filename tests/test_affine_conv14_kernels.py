"""A kernel's rule digest (`graphopt.patterns.kernels.rule_digest`) says what the rule matches,
checks, computes and emits, not where it sits in its file: a line added above it (a macro
alternative, as 476d6dd added to activations.yaml) left the hardswish kernels off, and the
generic engine ran every HardSwish site, until the digests were updated by hand."""

from __future__ import annotations

from graphopt._resources import builtin_dir
from graphopt.patterns import kernels
from graphopt.patterns.kernels import KERNELS, rule_digest
from graphopt.patterns.rules import load_rule_file


def _rules(path):
    return {r.name: r for r in load_rule_file(path)}


def test_a_rule_moved_down_its_file_keeps_its_kernel(tmp_path):
    for source in ("activations.yaml", "batchnorm.yaml"):
        text = (builtin_dir("patterns") / source).read_text()
        moved = tmp_path / source
        moved.write_text("# three lines\n# above every rule\n\n" + text)
        before, after = _rules(builtin_dir("patterns") / source), _rules(moved)
        for name in KERNELS.keys() & before.keys():
            assert after[name].targets[0].line == before[name].targets[0].line + 3
            assert rule_digest(after[name]) == rule_digest(before[name])
            assert kernels.kernel_for(after[name]) is not None, name


def test_an_edited_rule_still_turns_its_kernel_off(tmp_path):
    text = (builtin_dir("patterns") / "activations.yaml").read_text()
    edited = tmp_path / "activations.yaml"
    # hardswish's divisor 6 → 7: another rule, which the kernel must not run
    target = "- y = Div(Mul(x, Relu6(Add(x, 3))), 6)"
    assert target in text  # (the first is hardswish's own, the second via-hardsigmoid's)
    edited.write_text(text.replace(target, target[:-2] + "7)", 1))
    rules = _rules(edited)
    assert rule_digest(rules["hardswish"]) != KERNELS["hardswish"][0]
    assert kernels.kernel_for(rules["hardswish"]) is None
    assert kernels.kernel_for(rules["hardswish-via-hardsigmoid"]) is not None
