"""H167: the pipeline parse cache is shared by threads. Between one thread's lookup of a
remembered parse and its `move_to_end`, another could evict it (more than 32 pipelines in use
at once: a service optimizing for many users), and the first failed with a KeyError, a
traceback; `pipeline_files` indexed the cache after parsing, with the same race. The
interleaving is forced here by evicting the entry where another thread could have."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from graphopt import pipeline as P


def _files(tmp_path: Path) -> Path:
    (tmp_path / "sub.yaml").write_text("passes: [eliminate-dead-code]\n")
    main = tmp_path / "main.yaml"
    main.write_text("passes:\n  - constant-folding\n  - include: sub.yaml\n")
    return main


def _evict_once(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Make `graphopt.pipeline.<name>` empty the parse cache on its first call, as another
    thread's parses could, then do its work."""
    real = getattr(P, name)
    evicted: list[int] = []

    def evicting(*args: Any, **kwargs: Any) -> Any:
        if not evicted:
            evicted.append(len(P._parsed))
            P._parsed.clear()
        return real(*args, **kwargs)

    monkeypatch.setattr(P, name, evicting)
    return evicted


def test_a_remembered_parse_evicted_while_it_is_checked(tmp_path, monkeypatch) -> None:
    main = _files(tmp_path)
    assert P.load_pipeline(main).pass_names() == ["constant-folding", "eliminate-dead-code"]
    evicted = _evict_once(monkeypatch, "_read_or_none")  # reads the include to check the hit
    assert P.load_pipeline(main).pass_names() == ["constant-folding", "eliminate-dead-code"]
    assert evicted and evicted[0] >= 1


def test_pipeline_files_with_the_parse_evicted_before_it_is_read(tmp_path, monkeypatch) -> None:
    main = _files(tmp_path)
    evicted = _evict_once(monkeypatch, "_copied")  # after the parse, before its files are read
    assert P.pipeline_files(main) == [("pipeline", main), ("include", tmp_path / "sub.yaml")]
    assert evicted


def test_threads_parsing_more_pipelines_than_the_cache_holds(tmp_path) -> None:
    count = 3 * P._PARSE_CACHE_SIZE
    paths = []
    for i in range(count):
        paths.append(tmp_path / f"p{i}.yaml")
        paths[-1].write_text(f"passes:\n  - constant-folding: {{size_limit: {i + 1}}}\n")
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for r in range(2 * count):
                i = (7 * k + r) % count
                limit = P.load_pipeline(paths[i]).pass_steps()[0].pass_.size_limit  # type: ignore[attr-defined]
                assert limit == i + 1
        except BaseException as e:  # collected, asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
