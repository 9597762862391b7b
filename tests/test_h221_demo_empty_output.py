"""H221: `graphopt demo -o ''` fetched, optimized and verified the detector, then wrote
nothing and exited 0: `if args.output:` took the empty path for "no -o". Every other command
that writes a model refuses it in one line ("-o is empty; give a file name", exit 2), and so
does demo now, before anything is fetched."""

from __future__ import annotations

import pytest

from graphopt.cli import main


@pytest.mark.parametrize("output", ["", "-o="])
def test_empty_output_is_refused_before_the_fetch(monkeypatch, capsys, output) -> None:  # type: ignore[no-untyped-def]
    import graphopt.realmodels

    def no_fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("demo went on to fetch a model with -o ''")

    monkeypatch.setattr(graphopt.realmodels, "fetch_model", no_fetch)
    monkeypatch.setattr(graphopt.realmodels, "pending_downloads", no_fetch)
    argv = ["demo", "--images", "1", *(["-o", ""] if output == "" else [output])]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "graphopt demo: error: -o is empty; give a file name\n"


def test_no_output_still_writes_nothing(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """The control: demo without -o checks no output path (args.output is None)."""
    import graphopt.realmodels

    calls = []

    def no_fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        raise KeyboardInterrupt  # stop the run where it would fetch

    monkeypatch.setattr(graphopt.realmodels, "pending_downloads", no_fetch)
    assert main(["demo", "--images", "1"]) == 130
    assert calls, "demo without -o stopped before the fetch"
    assert capsys.readouterr().err == "graphopt demo: interrupted; nothing was written\n"
