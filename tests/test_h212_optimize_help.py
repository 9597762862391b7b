"""`graphopt optimize --help` says what --verify and --verify-each do (H212).

--verify said it writes nothing "when an output differs by more than --atol + --tolerance",
a bound of 1.1e-4 that an output of magnitude 1000 differing by 0.05 passes: the bound is
--atol + --tolerance × the output's largest magnitude (and integer outputs must be equal), as
the --tolerance line says. --verify-each said "run the ONNX checker after every pass"; it runs
it (full check) after each pass that changed the model, stops at the first whose output fails
it, and only warns of an error the input has.
"""

from __future__ import annotations

import re

import pytest

from graphopt.cli import main


def _help(capsys: pytest.CaptureFixture[str], flag: str) -> str:
    with pytest.raises(SystemExit):
        main(["optimize", "--help"])
    text = capsys.readouterr().out
    entry = re.search(rf"\n  {re.escape(flag)}\s+(.*?)\n  -", text, re.S)
    assert entry is not None, text
    return " ".join(entry.group(1).split())


def test_verify_help_states_the_relative_bound(capsys) -> None:
    said = _help(capsys, "--verify")
    assert "--atol + --tolerance × its largest magnitude" in said
    assert "integer outputs must be equal" in said


def test_verify_each_help_says_when_the_checker_runs(capsys) -> None:
    said = _help(capsys, "--verify-each")
    assert "full check" in said
    assert "after every pass that changes the model" in said
