"""Ctrl-C before a command runs (while the parser and the commands' modules load) ended in a
KeyboardInterrupt traceback (H169 saw it in 9 of 30 early SIGINTs); it is one line and exit 130,
as an interrupt during a command is."""

from __future__ import annotations

import pytest

from graphopt import cli


def test_an_interrupt_while_the_parser_is_built_is_one_line(monkeypatch, capsys):
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    monkeypatch.setattr("sys.argv", ["graphopt", "optimize", "m.onnx", "-o", "o.onnx"])
    with pytest.raises(SystemExit) as e:
        cli.run_cli()
    assert e.value.code == 130
    err = capsys.readouterr().err
    assert err == "graphopt: interrupted; nothing was written\n"
