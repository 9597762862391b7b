"""`graphopt demo -p ort-cpu` compares the model's NCHW fallback (the graph a CPU of another
block size runs) on the photographs as well as its NCHWc graph, as optimize --verify does; it
compared only the branch this CPU takes and called the model verified."""

from __future__ import annotations

import re

import pytest

from graphopt.cli import main

pytestmark = pytest.mark.realmodel


def test_demo_compares_the_nchw_fallback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--model", "layout_cdla", "-p", "ort-cpu", "--images", "1"]) == 0
    out = capsys.readouterr().out
    assert "(NCHWc graph; " in out  # the guarded model, with both branches
    lines = re.findall(
        r"^real image 0 at level (\w+)( \(NCHW fallback\))?: output (\S+):", out, re.M
    )
    outputs = {name for _, _, name in lines}
    assert len(outputs) == 8
    for level in ("all", "disable"):
        for fallback in ("", " (NCHW fallback)"):
            seen = {name for lv, fb, name in lines if lv == level and fb == fallback}
            assert seen == outputs, (level, fallback)


def test_demo_of_a_standard_model_has_no_fallback_lines(capsys: pytest.CaptureFixture[str]):
    assert main(["demo", "--model", "layout_cdla", "--images", "1"]) == 0
    out = capsys.readouterr().out
    assert "fallback" not in out and len(re.findall(r"^real image 0: output", out, re.M)) == 8
