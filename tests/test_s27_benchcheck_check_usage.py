"""`graphopt check`'s usage line names every option it takes.

check writes its usage by hand (its model may follow --shapes, `_common.add_shapes_argument`),
and that line left out --no-progress (added later): `graphopt check --help` and every usage
error showed no such flag. Every command's usage is checked here, as argparse makes the others."""

from __future__ import annotations

import argparse

import pytest

from graphopt.cli import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_commands()))
def test_the_usage_names_every_option(command: str) -> None:
    parser = _commands()[command]
    usage = parser.format_usage()
    missing = [
        action.option_strings[-1]
        for action in parser._actions
        if action.option_strings
        and action.help != argparse.SUPPRESS
        and not any(option in usage for option in action.option_strings)
    ]
    assert missing == [], usage
