"""Error text H141 made consistent: one `shown` for the commands and the library, paths shown
on one line in merge's errors, bench --inputs named by its flag, merge --input-map and split
--strip-prefix given to no effect, optimize --opt-level out of range. Every test here failed
before its fix.
"""

from __future__ import annotations

from pathlib import Path

import graphopt.commands._common
import graphopt.distill


def test_shown_is_one_function_the_commands_and_the_library_share():
    """distill.py carried a private copy of the commands' `shown` (the library does not import
    the commands); it lives in graphopt._text now."""
    from graphopt._text import shown

    assert graphopt.commands._common.shown is shown
    assert graphopt.distill.shown is shown
    assert not hasattr(graphopt.distill, "_shown")
    assert shown("a\nb") == "'a\\nb'"
    assert shown(Path("a b")) == "a b"  # a space is printable: as given
