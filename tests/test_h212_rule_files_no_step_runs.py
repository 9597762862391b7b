"""optimize(rule_files=...) whose rules no step of the pipeline runs says so (H212).

A pipeline's `rules:` whose rules no rule pass selects is a `PipelineError` (no `fuse-patterns`
step: the `user` group never runs). The same rule files given to `graphopt.optimize` as
`rule_files=` with a built-in pipeline (none of which has a `fuse-patterns` step) were taken
without a word and never ran: the model came back with the Sigmoid and Mul the rule fuses.
Then a warning named them; since H227 they are a `PipelineError`, as a pipeline's own `rules:`
that no step runs are (a warned-away input is still an input ignored).
"""

from __future__ import annotations

import logging

import pytest

import graphopt
from graphopt.pipeline import make_pipeline
from tests.fusion_models import build
from tests.test_patterns_engine import QUICKGELU_RULE

SILU = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,8] x) => (float[2,8] y) {
    s = Sigmoid(x)
    y = Mul(x, s)
}"""


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("pipeline", ["default", "tensorrt", "simplify"])
def test_rule_files_no_step_runs_are_named_in_an_error(tmp_path, pipeline: str) -> None:
    # (H227: a warning until then, which left the user's rules unrun; now refused as a
    # pipeline's own `rules:` are)
    rules = tmp_path / "r.yaml"
    rules.write_text(QUICKGELU_RULE)
    with pytest.raises(graphopt.PipelineError) as e:
        graphopt.optimize(build(SILU), pipeline, rule_files=[str(rules)])
    assert str(e.value) == (
        f"pipeline {pipeline!r}: rule_files loads 1 rule(s) ('my-silu') that no step runs: add "
        "a `fuse-patterns` step (it runs the `user` group; its `groups` option selects "
        "others), or name them in a rule pass's `rules` option; to run them after the "
        f"built-in, give a pipeline file of `passes: [{{include: {pipeline}}}, fuse-patterns]`"
    )


def test_rule_files_a_step_runs_are_taken_without_a_warning(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(QUICKGELU_RULE)
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        out = graphopt.optimize(
            build(SILU), make_pipeline("t", ["fuse-patterns"]), rule_files=rules
        )
        assert [n.op_type for n in out.graph.node] == ["QuickGelu"]
        # a rule in a group a built-in pass runs (fuse-activations: `activations`) runs there
        rules.write_text(QUICKGELU_RULE.replace("    doc:", "    group: activations\n    doc:"))
        out = graphopt.optimize(build(SILU), "default", rule_files=[rules])
        assert [n.op_type for n in out.graph.node] == ["QuickGelu"]
    assert not [w for w in _warnings(caplog) if "rule_files" in w]


def test_a_pipeline_files_rule_run_does_not_excuse_the_callers(tmp_path) -> None:
    """The pipeline's own `rules:` run (fuse-patterns names my-silu); the caller's file, a
    rule in another group no step selects, is still named."""
    (tmp_path / "r1.yaml").write_text(QUICKGELU_RULE)
    (tmp_path / "r2.yaml").write_text(
        QUICKGELU_RULE.replace("my-silu", "my-silu2").replace(
            "    doc:", "    group: mine\n    doc:"
        )
    )
    (tmp_path / "p.yaml").write_text(
        "passes:\n  - fuse-patterns: {rules: [my-silu]}\nrules: [r1.yaml]\n"
    )
    with pytest.raises(
        graphopt.PipelineError, match=r"rule_files loads 1 rule\(s\) \('my-silu2'\)"
    ):
        graphopt.optimize(build(SILU), str(tmp_path / "p.yaml"), rule_files=tmp_path / "r2.yaml")
