"""A pipeline that runs no rule pass, including one whose `rules:` loads rules, is refused at
its `include:` line, saying the rules are the included pipeline's: the error named line 1 of
the including file and its "`rules:`", which that file does not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline

RULE = 'rules:\n  - name: a\n    group: user\n    target: "y = Relu(x)"\n    replacement: "y = Relu(x)"\n'


def test_included_rules_no_step_runs_names_the_include(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE)
    (tmp_path / "inc.yaml").write_text("rules: [r.yaml]\npasses: [eliminate-dead-code]\n")
    (tmp_path / "p.yaml").write_text(
        "name: top\npasses:\n  - eliminate-noops\n  - include: inc.yaml\n"
    )
    with pytest.raises(PipelineError) as e:
        load_pipeline(tmp_path / "p.yaml")
    text = str(e.value)
    assert text.startswith(f"{tmp_path / 'p.yaml'}:4: the included pipeline's `rules:` loads 1 ")
    assert "('a') that no step runs: add a `fuse-patterns` step" in text


def test_own_rules_still_named_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE)
    (tmp_path / "p.yaml").write_text("name: top\nrules: [r.yaml]\npasses: [eliminate-noops]\n")
    with pytest.raises(PipelineError, match=r"p\.yaml:2: `rules:` loads 1 rule\(s\) \('a'\)"):
        load_pipeline(tmp_path / "p.yaml")


def test_included_rules_run_by_the_including_file_are_taken(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE)
    (tmp_path / "inc.yaml").write_text("rules: [r.yaml]\npasses: [eliminate-dead-code]\n")
    (tmp_path / "p.yaml").write_text("passes:\n  - include: inc.yaml\n  - fuse-patterns\n")
    assert load_pipeline(tmp_path / "p.yaml").rule_files == [tmp_path / "r.yaml"]
