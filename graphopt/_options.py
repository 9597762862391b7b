"""Argument checks shared by the public Python API's functions (`merge`, `split`, `quantize`):
an unknown keyword argument or a value of the wrong type is a one-line `OptionError` naming the
argument, what it takes and what it got, not Python's TypeError from deep inside. What each
function takes and its ranges stay in that function's module."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graphopt.errors import OptionError


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
