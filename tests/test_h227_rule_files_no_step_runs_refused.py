"""optimize(rule_files=...) whose rules no step of the pipeline runs is a `PipelineError` (H227).

With a built-in pipeline (none has a `fuse-patterns` step, which runs the `user` group) the
caller's rules never ran: 9e4c1ea named them in a warning and returned the model unfused, a
user input warned away. A pipeline's own `rules:` that no step runs were already refused; now
the caller's are too, and the error says how to run them after a built-in: a pipeline file
that includes it and adds `fuse-patterns` (checked here to run them). Rules in a group a
built-in pass runs (`activations`: fuse-activations) are taken as before.
"""

from __future__ import annotations

import pytest

import graphopt
from tests.fusion_models import build
from tests.test_h212_rule_files_no_step_runs import SILU
from tests.test_patterns_engine import QUICKGELU_RULE


def test_rule_files_with_a_builtin_that_runs_none_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "r.yaml"
    rules.write_text(QUICKGELU_RULE)
    with pytest.raises(graphopt.PipelineError) as e:
        graphopt.optimize(build(SILU), "default", rule_files=[rules])
    text = str(e.value)
    assert "\n" not in text
    assert text.startswith("pipeline 'default': rule_files loads 1 rule(s) ('my-silu') that no")
    assert text.endswith("give a pipeline file of `passes: [{include: default}, fuse-patterns]`")


def test_the_pipeline_file_the_error_suggests_runs_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "r.yaml"
    rules.write_text(QUICKGELU_RULE)
    (tmp_path / "p.yaml").write_text("passes: [{include: default}, fuse-patterns]\n")
    out = graphopt.optimize(build(SILU), str(tmp_path / "p.yaml"), rule_files=[rules])
    assert [n.op_type for n in out.graph.node] == ["QuickGelu"]


def test_rules_a_builtin_pass_runs_are_taken(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "r.yaml"
    rules.write_text(QUICKGELU_RULE.replace("    doc:", "    group: activations\n    doc:"))
    out = graphopt.optimize(build(SILU), "default", rule_files=[rules])
    assert [n.op_type for n in out.graph.node] == ["QuickGelu"]
