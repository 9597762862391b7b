"""H167: an option's value built of nested YAML aliases (`&b [*a, *a, ...]`, `&c [*b, ...]`,
nine levels of nine) is ~1 KB in the file and shared in memory, but the error that refused
its type wrote its full repr: 9**9 strings, a MemoryError traceback (or all the memory
there is). The value is now shown cut short."""

from __future__ import annotations

import itertools
import resource
import sys

import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import parse_pipeline


def _bomb(levels: int = 9) -> str:
    names = "abcdefghijklmnop"[:levels]
    items = ["&a [" + ", ".join(["Identity"] * 9) + "]"]
    for before, name in itertools.pairwise(names):
        items.append(f"&{name} [" + ", ".join([f"*{before}"] * 9) + "]")
    return "passes:\n  - eliminate-noops:\n      only: [" + ", ".join(items) + "]\n"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/statm")
def test_an_alias_bomb_in_an_option_is_refused_in_a_short_line() -> None:
    text = _bomb()
    assert len(text) < 1200
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    # 1.5 GB more than this process maps now: the old message's repr needs several GB
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    limit = mapped + 3 * 1024**3 // 2
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))
    try:
        with pytest.raises(PipelineError) as err:
            parse_pipeline(text, "bomb.yaml")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    message = str(err.value)
    assert message.startswith(
        "bomb.yaml:3: option 'only' of pass 'eliminate-noops' must be list, got [['Identity', "
    )
    assert len(message) < 600 and "\n" not in message


def test_a_small_wrong_value_is_shown_whole() -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline("passes:\n  - eliminate-noops: {only: [1, 2]}\n", "p.yaml")
    assert (
        str(err.value)
        == "p.yaml:2: option 'only' of pass 'eliminate-noops' must be list, got [1, 2]"
    )
