"""bench --help said --threads 0 means "all" CPUs; onnxruntime's default intra-op pool is one
thread per physical core (its threading docs: a 6-core machine with 12 logical processors
gets 6), half of "all" where cores run two hardware threads."""

from __future__ import annotations

import pytest

from graphopt.cli import main


def test_threads_help_says_what_zero_means(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0: all" not in text and "one per physical core" in text
