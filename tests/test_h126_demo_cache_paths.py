"""`graphopt demo -o` and the model cache (H126, review of 8ca9acd): 8ca9acd refused only the
files this demo reads; `-o` could still replace any other file there (another model of the
same wheel, a photograph beyond --images, fetched yet or not, a cached wheel), which later
demos, benchmarks and tests read as the fetched originals (a later fetch takes a file at a
member's path for that member). A hard link elsewhere to a cached file stays allowed: the save
replaces the link, not the cached file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from graphopt import realmodels
from graphopt.cli import main

DETECTOR = realmodels.MODELS["common_det"].package


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A cache of its own holding common_det's and the photographs' wheels as hard links to the
    user's (copies on another file system): a save over one there replaces the link, never the
    user's wheel (a symbolic link would be written through). Downloads are refused."""
    realmodels.fetch_model("common_det")
    realmodels.image_paths(realmodels.IMAGE_NAMES[:1])
    wheels = [realmodels._cached_wheel(r) for r in (DETECTOR, realmodels.IMAGE_WHEEL)]
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHOPT_CACHE", str(cache))
    (cache / "wheels").mkdir(parents=True)
    for wheel in wheels:
        assert wheel is not None
        try:
            os.link(wheel, cache / "wheels" / wheel.name)
        except OSError:
            shutil.copyfile(wheel, cache / "wheels" / wheel.name)

    def refuse(requirement: str, folder: Path) -> Path:
        raise AssertionError(f"no download of {requirement} expected")

    monkeypatch.setattr(realmodels, "_download", refuse)
    return cache


def _state(path: Path) -> tuple[int, int, int] | None:
    """Inode, size and mtime: what a save over `path` changes (None: no file)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@pytest.mark.parametrize("given", ["other_model", "unfetched_photograph", "wheel"])
def test_demo_writes_over_no_other_file_of_the_cache(private_cache, capsys, given: str) -> None:
    detector = realmodels.fetch_model("common_det")
    realmodels.image_paths(realmodels.IMAGE_NAMES[:1])  # the photographs' folder is made
    files = private_cache / "files"
    target = {
        # another model of the same wheel, extracted
        "other_model": realmodels._extract(DETECTOR, "ddddocr/common_old.onnx"),
        # a photograph a demo with more --images reads, not extracted yet
        "unfetched_photograph": realmodels.member_path(
            realmodels.IMAGE_WHEEL, f"skimage/data/{realmodels.IMAGE_NAMES[2]}"
        ),
        "wheel": realmodels._cached_wheel(DETECTOR),
    }[given]
    assert target is not None and private_cache in target.parents
    watched = [detector, target]
    before = [_state(p) for p in watched]
    listing = sorted(str(p.relative_to(private_cache)) for p in files.rglob("*"))
    argv = ["demo", "--model", "common_det", "--images", "1", "-o", str(target)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    folder = private_cache / ("wheels" if given == "wheel" else "files")
    assert f"-o {target} is in the model cache's {folder}, " in captured.err, captured.err
    assert captured.out == ""  # refused before the fetch, optimize and comparison
    assert [_state(p) for p in watched] == before
    assert sorted(str(p.relative_to(private_cache)) for p in files.rglob("*")) == listing


def test_demo_refuses_the_cache_by_a_path_through_a_link_and_dotdot(
    private_cache, tmp_path, capsys
) -> None:
    other = realmodels._extract(DETECTOR, "ddddocr/common_old.onnx")
    link = tmp_path / "into_cache"
    link.symlink_to(other.parent)
    out = f"{link}/../{other.parent.name}/{other.name}"
    before = _state(other)
    assert main(["demo", "--model", "common_det", "--images", "1", "-o", out]) == 2
    assert f"-o {out} is in the model cache's" in capsys.readouterr().err
    assert _state(other) == before


def test_a_hard_link_to_a_cached_model_elsewhere_is_replaced_not_written_through(
    private_cache, tmp_path, capsys
) -> None:
    """Not refused, and harmless: the save puts a new file at the link's name."""
    detector = realmodels.fetch_model("common_det")
    link = tmp_path / "mine.onnx"
    os.link(detector, link)
    before = _state(detector)
    original = detector.read_bytes()
    assert main(["demo", "--model", "common_det", "--images", "1", "-o", str(link)]) == 0
    capsys.readouterr()
    assert _state(detector) == before and detector.read_bytes() == original
    assert link.stat().st_ino != detector.stat().st_ino
    assert link.read_bytes() != original  # the optimized model
