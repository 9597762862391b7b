"""`graphopt quantize --cache new/c.cache` makes the folders the cache needs; a run that then
fails to save its model puts the cache and its sidecar back (`cache.put_back`) and, now, removes
the folders it made for them too, as far as they are empty (the API's own failure path did;
the CLI's, after the save, left `new/` behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt.cli import main
from tests.test_sidecar_review14 import Written, written  # noqa: F401 (the fixture)


@pytest.mark.realmodel
@pytest.mark.parametrize("error", ["SaveError", "KeyboardInterrupt"])
def test_a_failed_save_removes_the_folders_made_for_the_cache(
    written: Written,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: str,
) -> None:
    import graphopt.commands._common as common
    from graphopt.errors import SaveError

    def fail(*args: object, **kwargs: object) -> None:
        if error == "SaveError":
            raise SaveError("q.onnx: No space left on device")
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "save_output", fail)
    (tmp_path / "kept").mkdir()  # a folder that was there stays, empty or not
    for cache in (tmp_path / "new" / "deeper" / "c.cache", tmp_path / "kept" / "c.cache"):
        argv = ["quantize", written.model, "-o", str(tmp_path / "q.onnx"), "--cache-in"]
        argv += [str(written.cache), "--cache", str(cache), "--no-progress"]
        assert main(argv) == (2 if error == "SaveError" else 130)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []
