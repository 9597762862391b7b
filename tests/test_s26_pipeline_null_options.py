"""`- pass: <null>` is a pass with its default options, as `- pass` is, whichever way YAML
spells null (`~`, `null`, `Null`, `NULL`, nothing): `Null` and `NULL` were refused ("options
of 'eliminate-dead-code' must be a mapping") while the quoted string 'null' or '~' was taken
as no options. A string is no mapping of options."""

from __future__ import annotations

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import parse_pipeline


@pytest.mark.parametrize("null", ["", "~", "null", "Null", "NULL", "!!null", "!!null ''"])
def test_every_spelling_of_null_is_default_options(null: str) -> None:
    pipeline = parse_pipeline(f"passes:\n  - eliminate-dead-code: {null}\n", "p.yaml")
    assert pipeline.pass_names() == ["eliminate-dead-code"]
    assert pipeline.pass_steps()[0].pass_.keep_unused_initializers is False


@pytest.mark.parametrize("text", ["'null'", '"~"', "''", "!!str", "nul", "0", "false"])
def test_a_string_or_other_scalar_is_no_options(text: str) -> None:
    with pytest.raises(
        PipelineError, match=r"^p\.yaml:2: options of 'eliminate-dead-code' must be a mapping"
    ):
        parse_pipeline(f"passes:\n  - eliminate-dead-code: {text}\n", "p.yaml")
