"""A pipeline's names and paths are read as written (H212).

`_scalar(..., str)` returned `str()` of what YAML 1.1 reads: an empty `name:` named the
pipeline 'None' (optimize then reported "with pipeline 'None'"), an empty `description:` was
'None', a step `- yes` was refused as "unknown pass 'True'" (a name nobody wrote), `include: ~`
looked for a file named 'None', a rule file `1e3` was '1000.0'. A value is now its text as
written; an empty one (null) where a string is wanted is an error naming the key. An empty
value (`name:`, `size_limit:`) was "invalid value tag:yaml.org,2002:null: expected the node
content, but found '<document end>'"; it is now the null that `~` is.
"""

from __future__ import annotations

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import parse_pipeline


@pytest.mark.parametrize("key", ["name", "description"])
@pytest.mark.parametrize("empty", ["", " ~", " null"])
def test_an_empty_name_or_description_is_refused(key: str, empty: str) -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(f"{key}:{empty}\npasses: [eliminate-dead-code]\n", "p.yaml")
    assert str(err.value) == f"p.yaml:1: `{key}:` expected a string, got nothing (null)"


def test_an_empty_include_is_refused_naming_the_key() -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline("passes:\n  - include:\n", "p.yaml")
    assert str(err.value) == "p.yaml:2: `include:` expected a string, got nothing (null)"


@pytest.mark.parametrize("written", ["yes", "on", "No", "1.10", "0x1F", "1e3"])
def test_an_unknown_pass_is_named_as_written(written: str) -> None:
    for text in (f"passes:\n  - {written}\n", f"passes:\n  - {written}: {{}}\n"):
        with pytest.raises(PipelineError) as err:
            parse_pipeline(text, "p.yaml")
        assert str(err.value).startswith(f"p.yaml:2: unknown pass {written!r}; valid passes: ")


@pytest.mark.parametrize("written", ["1.10", "0x1F", "yes", "2024-01-01"])
def test_a_name_that_yaml_reads_as_another_type_is_kept_as_written(written: str) -> None:
    pipeline = parse_pipeline(
        f"name: {written}\ndescription: {written}\npasses: [eliminate-dead-code]\n", "p.yaml"
    )
    assert (pipeline.name, pipeline.description) == (written, written)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (
            "constant-folding: {size_limit: }",
            "option 'size_limit' of pass 'constant-folding' must be int, got None",
        ),
        (
            "eliminate-noops:\n      only:\n",
            "option 'only' of pass 'eliminate-noops' must be list, got None",
        ),
    ],
)
def test_an_empty_option_value_is_read_as_null(options: str, error: str) -> None:
    """An empty value was "invalid value tag:yaml.org,2002:null: expected the node content,
    but found '<document end>'" (it serializes to no document); it is the null `~` is."""
    with pytest.raises(PipelineError) as err:
        parse_pipeline(f"passes:\n  - {options}\n", "p.yaml")
    assert str(err.value).endswith(error)
    assert "document end" not in str(err.value)
