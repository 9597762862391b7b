"""H167: `opt_level: "2"` (or 2.0, yes, on) in a pipeline was refused as "expected a int, got
'2'": neither the key nor, for `yes` (True to YAML 1.1), what the value was read as. Now the
error names the key, the type wanted, and the value as read."""

from __future__ import annotations

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import parse_pipeline


@pytest.mark.parametrize(
    ("written", "got"),
    [
        ('"2"', "'2' (a string)"),
        ("2.0", "2.0 (a float)"),
        ("yes", "yes (a boolean)"),
        ("on", "on (a boolean)"),
        ("true", "true (a boolean)"),
    ],
)
def test_opt_level_that_is_no_integer_names_the_key(written: str, got: str) -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(f"opt_level: {written}\npasses: []\n", "p.yaml")
    assert str(err.value) == f"p.yaml:1: `opt_level:` expected an integer, got {got}"


def test_max_iterations_and_name_name_their_key() -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(
            "passes:\n  - repeat: {max_iterations: '3', passes: [eliminate-dead-code]}\n", "p.yaml"
        )
    assert str(err.value) == "p.yaml:2: `max_iterations:` expected an integer, got '3' (a string)"
    with pytest.raises(PipelineError) as err:
        parse_pipeline("name: [a]\npasses: []\n", "p.yaml")
    assert str(err.value) == "p.yaml:1: `name:` expected a string here"


def test_an_integer_opt_level_is_taken() -> None:
    assert parse_pipeline("opt_level: 1\npasses: []\n").opt_level == 1
