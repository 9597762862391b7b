"""A TensorRT install whose import fails with something other than ImportError (libnvinfer
missing: OSError) ended `graphopt quantize --cache` in a traceback after calibrating (H221):
`cache.tensorrt_version_number` caught ImportError only. quantize needs no TensorRT: the cache
is headed for the default version, with a warning naming the problem."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from graphopt.quant import cache


@pytest.mark.parametrize("error", ["OSError('libnvinfer.so.10: cannot open')", "RuntimeError('x')"])
def test_a_broken_install_heads_the_cache_for_the_default_version(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: str,
) -> None:
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text(f"raise {error}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    with caplog.at_level(logging.WARNING, logger="graphopt.quant.cache"):
        assert cache.tensorrt_version_number() == cache.DEFAULT_VERSION
    assert "TensorRT cannot be imported" in caplog.text
    assert cache.header("entropy").startswith(f"TRT-{cache.DEFAULT_VERSION}-")


def test_an_installed_version_string_is_still_read() -> None:
    assert cache.tensorrt_version_number("10.3.0") == 100300
    assert cache.tensorrt_version_number("8.6.1") == 8601
