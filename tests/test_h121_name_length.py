"""H121: one name-length check (`cache.name_too_long`) for `check_writable` and the sidecar.

`sidecar.refuse_unwritable` repeated `_common._check_writable`'s loop, but over the sidecar's
own name only: a cache whose path holds a folder to make with a name longer than the file
system takes passed it, calibration ran, and the cache's write failed after it ("File name
too long"). Both now share the helper, which checks the folders to make as well.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import graphopt
from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io
from graphopt.quant import sidecar as sidecar_io
from tests.models_util import one_conv_model

LONG = "f" * 300  # over any file system's 255 bytes


def test_name_too_long_names_the_first_name_over_the_folders_limit(tmp_path: Path) -> None:
    limit = cache_io.name_max(tmp_path)
    assert cache_io.name_too_long(tmp_path / "new" / "c.cache") is None
    assert cache_io.name_too_long(tmp_path / "new" / LONG / "c.cache") == (
        LONG,
        300,
        limit,
        tmp_path,
    )
    (tmp_path / "made").mkdir()
    found = cache_io.name_too_long(tmp_path / "made" / ("é" * 200))  # 400 bytes, 200 characters
    assert found == ("é" * 200, 400, limit, tmp_path / "made")
    # a folder given: the names below it only
    assert cache_io.name_too_long(tmp_path / "made" / "x", tmp_path / "made") is None


def test_the_sidecars_refusal_names_a_folder_to_make_that_is_too_long(tmp_path: Path) -> None:
    cache = tmp_path / LONG / "c.cache"
    with pytest.raises(QuantizeError) as e:
        sidecar_io.refuse_unwritable(cache)
    message = str(e.value)
    assert "the folder name 'ffff" in message and "is 300 bytes, more than" in message, message
    assert "give the cache a shorter path" in message and "\n" not in message
    # the sidecar's own name, as before
    name = "c" * (cache_io.name_max(tmp_path) - len(sidecar_io.SUFFIX) + 1)
    with pytest.raises(
        QuantizeError, match=r"its name is \d+ bytes, more than \d+ \(the cache's name plus"
    ):
        sidecar_io.refuse_unwritable(tmp_path / name)


def test_api_a_cache_folder_name_too_long_is_refused_before_calibrating(tmp_path: Path) -> None:
    read = []

    def feeds():  # type: ignore[no-untyped-def]
        read.append(1)  # (never reached with the fix: no feed is made)
        yield from ()

    with pytest.raises(QuantizeError, match="the folder name 'ffff"):
        graphopt.quantize(one_conv_model(), feeds(), cache=tmp_path / LONG / "c.cache")
    assert read == [] and list(tmp_path.iterdir()) == []


def test_check_writable_and_the_sidecar_read_one_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file system taking 100-byte names (ecryptfs takes 143): both say it, from one helper
    from graphopt.commands._common import check_writable

    monkeypatch.setattr(cache_io, "name_max", lambda folder: 100)
    name = "n" * 101
    with pytest.raises(QuantizeError) as e:
        check_writable(str(tmp_path / name), "--cache", QuantizeError, make_parents=True)
    assert f"the name {name[:40]!r}... is 101 bytes, more than folder {tmp_path} takes (100)" in (
        str(e.value)
    )
    with pytest.raises(QuantizeError, match="its name is 101 bytes, more than 100"):
        sidecar_io.refuse_unwritable(tmp_path / name[: -len(sidecar_io.SUFFIX)])
    check_writable(str(tmp_path / name[:100]), "--cache", QuantizeError, make_parents=True)
    sidecar_io.refuse_unwritable(tmp_path / name[: 100 - len(sidecar_io.SUFFIX)])
