"""H121: what a failed or refused sidecar write leaves behind.

- The sidecar reader takes at most `sidecar.MAX_BYTES` (16 MiB) but the writer wrote any
  size: ~230,000 uint8 zero points made a sidecar that every later `--cache-in` refused. The
  writer now refuses it in one line before anything is written, the cache included.
- `quantize --cache new/dir/c.cache` made `new/dir` for the cache; when the sidecar's write
  then failed, the cache was put back (removed) but the folders stayed, empty.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import graphopt
from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io
from graphopt.quant import sidecar as sidecar_io
from graphopt.realmodels import fetch_model
from tests.conftest import cache_written

SIZE = "320x320"


@dataclass
class Written:
    model: str  # the float ppocr_det
    cache: Path  # written by a calibrating run for target onnxruntime, its sidecar beside it


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    root = tmp_path_factory.mktemp("h121_writes")
    model = str(fetch_model("ppocr_det"))
    flags = ["--size", SIZE, "--target", "onnxruntime", "--accuracy-target", "0"]
    return Written(model, cache_written(root, model, *flags))


def _big_sidecar(count: int, name_bytes: int) -> sidecar_io.Sidecar:
    return sidecar_io.Sidecar(
        "a" * 64,
        "b" * 64,
        "onnxruntime",
        activations={
            f"{i:08d}".ljust(name_bytes, "t"): (np.float32(0.01), 3) for i in range(count)
        },
    )


def test_the_writer_refuses_what_the_reader_would(tmp_path: Path) -> None:
    # 17,000 zero points of 1000-byte names: ~17 MiB, over the reader's 16 MiB
    side = _big_sidecar(17_000, 1000)
    cache = tmp_path / "c.cache"
    with pytest.raises(QuantizeError) as e:
        sidecar_io.write(cache, side)
    message = str(e.value)
    assert message.startswith(f"{sidecar_io.path_of(cache)}: cannot write "), message
    assert "17000 zero points" in message and "more than a sidecar holds (16 MiB" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []
    # just under the limit: written, and read back
    small = _big_sidecar(15_000, 1000)
    sidecar_io.write(cache, small)
    assert sidecar_io.path_of(cache).stat().st_size <= sidecar_io.MAX_BYTES
    back = sidecar_io.read(cache)
    assert back is not None and back.activations == small.activations


@pytest.mark.realmodel
def test_api_a_sidecar_too_large_is_refused_before_the_cache_is_written(
    written: Written, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source" / "in.cache"  # the scales alone: no sidecar to read
    source.parent.mkdir()
    shutil.copy(written.cache, source)
    monkeypatch.setattr(sidecar_io, "MAX_BYTES", 1000)  # ppocr_det's zero points: ~10 kB
    old = tmp_path / "old.cache"  # a pair that the run would replace
    shutil.copy(written.cache, old)
    shutil.copy(sidecar_io.path_of(written.cache), sidecar_io.path_of(old))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    fresh = tmp_path / "new" / "c.cache"
    for cache in (old, fresh):
        with pytest.raises(QuantizeError, match="more than a sidecar holds"):
            graphopt.quantize(
                written.model, None, cache=cache, from_cache=source, target="onnxruntime"
            )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["source"]


def _fail_sidecar_writes(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Every atomic write of a sidecar raises `error` (a full disk, Ctrl-C); others go on."""
    import graphopt.ir.model_io as model_io

    real = model_io.write_atomically

    def write(path: Path, parent: Path, data: bytes) -> None:
        if str(path).endswith(sidecar_io.SUFFIX):
            raise error
        real(path, parent, data)

    monkeypatch.setattr(model_io, "write_atomically", write)


@pytest.mark.realmodel
@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), KeyboardInterrupt()], ids=["ENOSPC", "Ctrl-C"]
)
def test_api_a_failed_sidecar_write_removes_the_folders_the_cache_made(
    written: Written, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    (tmp_path / "empty").mkdir()  # a folder that was there, empty: it stays
    _fail_sidecar_writes(monkeypatch, error)
    for cache in (tmp_path / "new" / "deeper" / "c.cache", tmp_path / "empty" / "c.cache"):
        with pytest.raises((QuantizeError, KeyboardInterrupt)):
            graphopt.quantize(
                written.model, None, cache=cache, from_cache=written.cache, target="onnxruntime"
            )
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["empty"]


def test_a_failed_cache_write_removes_the_folders_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import graphopt.ir.model_io as model_io

    def full(path: Path, parent: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_io, "write_atomically", full)
    with pytest.raises(QuantizeError, match="No space left on device"):
        cache_io.write(tmp_path / "a" / "b" / "c.cache", {"x": np.float32(0.01)})
    assert list(tmp_path.iterdir()) == []


def test_put_back_removes_only_the_folders_made_and_only_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.cache"
    missing = cache_io.missing_folders(path)
    assert missing == [tmp_path / "a", tmp_path / "a" / "b"]
    cache_io.write(path, {"x": np.float32(0.01)})
    (tmp_path / "a" / "other").write_text("kept")  # someone else's file in a made folder
    cache_io.put_back(path, None, missing)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "a",
        "a/other",
    ]
