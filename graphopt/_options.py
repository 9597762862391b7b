"""Argument checks shared by the public Python API's functions (`merge`, `split`, `quantize`):
an unknown keyword argument or a value of the wrong type is a one-line `OptionError` naming the
argument, what it takes and what it got, not Python's TypeError from deep inside; so is a
positional argument past the last one a function takes by position. What each function takes
and its ranges stay in that function's module."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graphopt.errors import GraphoptError, OptionError


def refuse_unknown_options(function: str, unknown: Mapping[str, Any], valid: Sequence[str]) -> None:
    """An `OptionError` naming the first of the `unknown` keyword arguments `function` was
    given, the option it most resembles and the `valid` ones (Python's TypeError "unexpected
    keyword argument" was no GraphoptError, and named no option that exists)."""
    if not unknown:
        return
    name = sorted(unknown)[0]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise OptionError(f"{function}: unknown option {name!r}{hint}; options: {', '.join(valid)}")


def refuse_extra_positionals(
    function: str,
    extra: Sequence[object],
    positional: Sequence[str],
    hint: str = "",
    error: type[GraphoptError] = OptionError,
) -> None:
    """An `error` (`OptionError` unless told) naming the first of the `extra` positional
    arguments `function` was given past its `positional` ones (Python's TypeError "takes from
    1 to 5 positional arguments but 6 were given" was no GraphoptError and named no argument):
    what it takes by position, and `hint` or that the rest go by name."""
    if not extra:
        return
    given = len(positional) + len(extra)
    rest = hint or "give the others by name (option=value)"
    raise error(
        f"{function}: {given} positional arguments, but it takes at most {len(positional)} "
        f"({', '.join(positional)}); the {_ordinal(len(positional) + 1)} is "
        f"{given_text(extra[0])}: {rest}"
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def given_text(value: object) -> str:
    """`value` as an error shows it: its type and its repr, on one line and cut short."""
    text = " ".join(repr(value).split())
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def check_flag(option: str, value: object) -> None:
    """An `OptionError` unless `value` is True or False (numpy's too)."""
    if not isinstance(value, bool | np.bool_):  # "no" is true: it would turn the option on
        raise OptionError(f"{option} must be True or False, got {given_text(value)}")


def is_path(value: object) -> bool:
    """A path as `open` takes one by name: a str or an `os.PathLike` of one (not bytes, not
    an int, which `open` reads as a file descriptor)."""
    return isinstance(value, str) or (
        isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)
    )
