"""`simplify-shape-subgraphs: {size_limit: -5}` was accepted (H186 found it after making
constant-folding's same option refuse values below 1): both passes now check it alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt.errors import PipelineError
from graphopt.passes.shape_simplify import SimplifyShapeSubgraphs
from graphopt.pipeline import load_pipeline


@pytest.mark.parametrize("value", ["-5", "0"])
def test_a_size_limit_below_one_is_refused_naming_file_and_line(value: str, tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(f"passes:\n  - simplify-shape-subgraphs: {{size_limit: {value}}}\n")
    with pytest.raises(PipelineError) as err:
        load_pipeline(str(path))
    message = str(err.value)
    assert "p.yaml:2" in message and "size_limit must be 1 or more" in message
    assert f"got {value}" in message and "\n" not in message


def test_valid_limits_and_the_default_are_taken() -> None:
    assert SimplifyShapeSubgraphs(size_limit=1).size_limit == 1
    assert SimplifyShapeSubgraphs().size_limit > 1
    with pytest.raises(TypeError, match="size_limit must be an int"):
        SimplifyShapeSubgraphs(size_limit=2.5)  # type: ignore[arg-type]
