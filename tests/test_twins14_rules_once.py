"""A pipeline with `rules:` assembles the rule set once at load (`_refuse_rules_no_step_runs`
assembled it, then the built-in rules again to tell them from the files'), and still tells
the files' rules from the built-in ones."""

from __future__ import annotations

import pytest

import graphopt.patterns
from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline
from tests.test_patterns_engine import QUICKGELU_RULE


def test_a_rules_pipeline_assembles_the_rule_set_once_at_load(tmp_path, monkeypatch):
    (tmp_path / "rules.yaml").write_text(QUICKGELU_RULE)
    pipe = tmp_path / "p.yaml"
    pipe.write_text("passes:\n  - fuse-patterns\nrules: [rules.yaml]\n")
    calls = []
    real = graphopt.patterns.rule_set

    def counting(extra_files=()):  # type: ignore[no-untyped-def]
        calls.append(list(extra_files))
        return real(extra_files)

    monkeypatch.setattr(graphopt.patterns, "rule_set", counting)
    pipeline = load_pipeline(pipe)
    assert calls == [[tmp_path / "rules.yaml"]]
    assert pipeline.rule_files == [tmp_path / "rules.yaml"]


def test_only_the_files_rules_are_named_when_no_step_runs_them(tmp_path):
    (tmp_path / "rules.yaml").write_text(QUICKGELU_RULE)
    pipe = tmp_path / "q.yaml"
    pipe.write_text("passes:\n  - fold-batchnorm\nrules: [rules.yaml]\n")
    with pytest.raises(PipelineError, match=r"q\.yaml:3: `rules:` loads 1 rule\(s\) \('my-silu'\)"):
        load_pipeline(pipe)
