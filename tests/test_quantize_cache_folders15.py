"""`graphopt quantize --cache new/c.cache` makes the folders the cache needs; a run that then
fails to save its model puts the cache and its sidecar back (`cache.put_back`) and, now, removes
the folders it made for them too, as far as they are empty (the API's own failure path did;
the CLI's, after the save, left `new/` behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_sidecar_review14 import (  # noqa: F401 (written: the fixture)
    Written,
    fail_the_save,
    quantize_from_cache,
    written,
)


@pytest.mark.realmodel
@pytest.mark.parametrize("error", ["SaveError", "KeyboardInterrupt"])
def test_a_failed_save_removes_the_folders_made_for_the_cache(
    written: Written,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: str,
) -> None:
    exit_code = fail_the_save(monkeypatch, error)
    (tmp_path / "kept").mkdir()  # a folder that was there stays, empty or not
    for cache in (tmp_path / "new" / "deeper" / "c.cache", tmp_path / "kept" / "c.cache"):
        assert quantize_from_cache(written, tmp_path / "q.onnx", cache) == exit_code
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []
