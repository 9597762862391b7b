"""`repeat:` takes at most MAX_ITERATIONS (100) rounds (H212).

A group stops when a round changes nothing. One that never settles, two user rules that undo
each other (x·σ(x) → QuickGelu → x·σ(x)), ran every round it was allowed: with
`max_iterations: 1000000` a two-node model ran 17779 rounds in two minutes (a warning each)
and would have run for hours. max_iterations above 100 is now a `PipelineError` naming the
line; the group at 100 stops and says it did not settle.
"""

from __future__ import annotations

import logging

import pytest

import graphopt
from graphopt.errors import PipelineError
from graphopt.pipeline import parse_pipeline
from tests.fusion_models import build

PING_PONG = """rules:
  - name: fwd
    target: y = Mul(x, Sigmoid(x))
    replacement: y = com.microsoft.QuickGelu(x, alpha=1.0)
  - name: back
    target: y = com.microsoft.QuickGelu(x, alpha=1.0)
    replacement: y = Mul(x, Sigmoid(x))
"""

SILU = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,8] x) => (float[2,8] y) {
    s = Sigmoid(x)
    y = Mul(x, s)
}"""


@pytest.mark.parametrize("count", [101, 1000000, 10**30])
def test_max_iterations_above_the_ceiling_is_refused(count: int) -> None:
    text = f"passes:\n  - repeat:\n      max_iterations: {count}\n      passes: [eliminate-dead-code]\n"
    with pytest.raises(PipelineError) as err:
        parse_pipeline(text, "p.yaml")
    assert str(err.value).startswith(f"p.yaml:2: max_iterations must be at most 100, got {count}: ")


def test_the_ceiling_is_taken() -> None:
    from graphopt.pipeline import MAX_ITERATIONS

    text = f"passes:\n  - repeat: {{max_iterations: {MAX_ITERATIONS}, passes: [eliminate-dead-code]}}\n"
    (step,) = parse_pipeline(text, "p.yaml").steps
    assert step.max_iterations == MAX_ITERATIONS == 100  # type: ignore[union-attr]


def test_a_group_that_never_settles_stops_at_the_ceiling_and_says_so(tmp_path, caplog) -> None:
    (tmp_path / "r.yaml").write_text(PING_PONG)
    (tmp_path / "p.yaml").write_text(
        "rules: [r.yaml]\npasses:\n  - repeat: {max_iterations: 100, passes: [fuse-patterns]}\n"
    )
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        _, report = graphopt.optimize_with_report(build(SILU), str(tmp_path / "p.yaml"))
    assert len(report.records) == 100
    assert report.capped_repeats == [f"{tmp_path / 'p.yaml'}:3"]
    assert any("stopped at max_iterations: 100" in r.getMessage() for r in caplog.records)
