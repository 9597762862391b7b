"""A rule pass's `max_sweeps` has a ceiling of 100, as `repeat: max_iterations` has (H212: two
user rules that undo each other with `max_sweeps: 100000000` ran for hours inside one pass)."""

from __future__ import annotations

import pytest

from graphopt.errors import PipelineError
from graphopt.passes.fuse_patterns import MAX_SWEEPS, FusePatterns
from graphopt.pipeline import parse_pipeline


def test_max_sweeps_above_the_ceiling_is_a_pipeline_error_naming_it():
    text = "passes:\n  - fuse-activations: {max_sweeps: 100000000}\n"
    with pytest.raises(PipelineError, match="max_sweeps must be at most 100, got 100000000"):
        parse_pipeline(text, "p.yaml")


def test_max_sweeps_at_the_ceiling_is_kept():
    pipeline = parse_pipeline("passes:\n  - fuse-patterns: {max_sweeps: 100}\n", "p.yaml")
    (step,) = pipeline.pass_steps()
    assert MAX_SWEEPS == 100
    assert isinstance(step.pass_, FusePatterns) and step.pass_.max_sweeps == 100


def test_the_api_refuses_it_too():
    with pytest.raises(ValueError, match="at most 100"):
        FusePatterns(max_sweeps=101)
    assert FusePatterns(max_sweeps=100).max_sweeps == 100
