"""H167: a YAML merge key (`<<: *defaults`) anywhere in a pipeline was refused as "invalid value
tag:yaml.org,2002:merge: could not determine a constructor for the tag ...", which names no
problem a user can act on. Now it says merge keys are not supported and what to write."""

from __future__ import annotations

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import parse_pipeline

REFUSAL = (
    "YAML merge keys (`<<`) are not supported in a pipeline: write the keys out, or give a "
    "whole mapping as an alias (*name)"
)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # the options of a pass, shared through an anchor
        (
            "passes:\n  - constant-folding: &o {size_limit: 10}\n"
            "  - constant-folding:\n      <<: *o\n      fold_shapes: false\n",
            4,
        ),
        ("<<: {name: x}\npasses: []\n", 1),  # the top level
        ("passes:\n  - <<: {constant-folding: {}}\n", 2),  # a step
        (
            "passes:\n  - repeat:\n      <<: {max_iterations: 2}\n      passes: [eliminate-dead-code]\n",
            3,
        ),
        ("passes:\n  - eliminate-noops: {only: [{<<: {a: 1}}]}\n", 2),  # inside an option's value
    ],
)
def test_a_merge_key_is_refused_by_name_at_its_line(text: str, line: int) -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(text, "p.yaml")
    assert str(err.value) == f"p.yaml:{line}: {REFUSAL}"


def test_a_whole_mapping_as_an_alias_is_taken() -> None:
    pipeline = parse_pipeline(
        "passes:\n  - constant-folding: &o {size_limit: 10}\n  - constant-folding: *o\n"
    )
    assert [s.pass_.size_limit for s in pipeline.pass_steps()] == [10, 10]  # type: ignore[attr-defined]
