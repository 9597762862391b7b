"""H167: a group given by alias is parsed again where it is used, and a file may be included
many times, so a small pipeline could expand without bound: `&b [{repeat: *a} x9]`, `&c
[{repeat: *b} x9]`, ... made 9**k pass steps (an 845-byte file: 36 s and 132861 steps; nine
levels: hours). A pipeline may now make at most 2000 pass steps (the built-ins: 33 to 37)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline, parse_pipeline

LIMIT = 2000  # graphopt.pipeline.MAX_PASS_STEPS


def _aliased(levels: int, width: int = 9) -> str:
    lines = [
        "passes:",
        "  - constant-folding",
        "  - repeat: &l0 [constant-folding, eliminate-dead-code]",
    ]
    for k in range(1, levels):
        lines.append(f"  - repeat: &l{k} [" + ", ".join([f"{{repeat: *l{k - 1}}}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_groups_given_by_alias_inside_each_other_are_refused() -> None:
    assert len(parse_pipeline(_aliased(3)).pass_steps()) == 1 + 2 + 18 + 162
    with pytest.raises(PipelineError) as err:
        parse_pipeline(_aliased(6), "bomb.yaml")  # 132861 steps: 36 s before
    assert str(err.value) == (
        f"bomb.yaml:3: the pipeline makes more than {LIMIT} pass steps (groups given by alias, "
        "or files included, inside each other many times?); write a smaller one"
    )


def test_files_included_many_times_inside_each_other_are_refused(tmp_path: Path) -> None:
    (tmp_path / "p0.yaml").write_text("passes: [" + ", ".join(["constant-folding"] * 8) + "]\n")
    for k in range(1, 5):
        steps = "".join(f"  - include: p{k - 1}.yaml\n" for _ in range(8))
        (tmp_path / f"p{k}.yaml").write_text("passes:\n" + steps)
    assert len(load_pipeline(tmp_path / "p2.yaml").pass_steps()) == 8**3
    with pytest.raises(PipelineError, match=f"makes more than {LIMIT} pass steps"):
        load_pipeline(tmp_path / "p4.yaml")  # 8**5 steps


def test_the_built_in_pipelines_are_well_below_the_limit() -> None:
    assert max(len(load_pipeline(n).pass_steps()) for n in ("default", "ort-cpu", "tensorrt")) < 50
