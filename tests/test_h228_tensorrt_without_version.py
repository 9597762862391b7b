"""A `tensorrt` that imports but has no version string (a folder named tensorrt on the Python
path imports as an empty namespace package; a stub module; a broken install) was said to be
one that "cannot be imported": `cache.tensorrt_version_number` read `tensorrt.__version__`
inside the import's try, so its AttributeError became "TensorRT cannot be imported
(AttributeError: module 'tensorrt' has no attribute '__version__')", and a __version__ that
was no version ('unknown') ended quantize in "TensorRT version 'unknown' is not a version like
10.3.0", a version no one gave. The backend (build, bench) said "TensorRT 0 is too old". Now
each says what it found: where the module is and what its __version__ lacks; quantize still
heads its cache for the default version (it needs no TensorRT), the backend refuses it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphopt.backends import tensorrt as trt_backend
from graphopt.errors import BackendError
from graphopt.quant import cache


@pytest.fixture(autouse=True)
def _tensorrt_put_back() -> Iterator[None]:
    """sys.modules' tensorrt as it was before the test (the fake one imported goes)."""
    before = sys.modules.get("tensorrt")
    yield
    sys.modules.pop("tensorrt", None)
    if before is not None:
        sys.modules["tensorrt"] = before


def _tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None) -> Path:
    """A `tensorrt` package on the path: `source` as its __init__.py, or a bare folder."""
    package = tmp_path / "site" / "tensorrt"
    package.mkdir(parents=True)
    if source is not None:
        (package / "__init__.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("tensorrt", None)
    return package


CASES = [
    (None, "which has no __version__"),  # a bare folder: a namespace package
    ("", "which has no __version__"),
    ("__version__ = None\n", "which has a __version__ that is no string (NoneType)"),
    ("__version__ = 'unknown'\n", "which has a __version__ 'unknown' that is no version like"),
]


@pytest.mark.parametrize(("source", "said"), CASES)
def test_the_cache_header_says_what_the_module_lacks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    source: str | None,
    said: str,
) -> None:
    package = _tensorrt(tmp_path, monkeypatch, source)
    with caplog.at_level(logging.WARNING, logger="graphopt.quant.cache"):
        assert cache.tensorrt_version_number() == cache.DEFAULT_VERSION
    assert len(caplog.records) == 1, caplog.text
    message = caplog.records[0].getMessage()
    assert "cannot be imported" not in message
    assert message.startswith(f"'import tensorrt' finds {package}"), message
    assert said in message, message
    assert message.endswith(f"the cache is headed for TensorRT {cache.DEFAULT_VERSION}")


@pytest.mark.parametrize(("source", "said"), CASES)
def test_the_backend_says_what_the_module_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None, said: str
) -> None:
    package = _tensorrt(tmp_path, monkeypatch, source)
    with pytest.raises(BackendError) as caught:
        trt_backend.import_tensorrt()
    message = str(caught.value)
    assert "too old" not in message and "\n" not in message
    assert message.startswith(f"'import tensorrt' finds {package}"), message
    assert said in message and message.endswith(trt_backend.INSTALL_HINT)


def test_a_version_string_is_read_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _tensorrt(tmp_path, monkeypatch, "__version__ = '10.3.0.26'\n")
    with caplog.at_level(logging.WARNING, logger="graphopt.quant.cache"):
        assert cache.tensorrt_version_number() == 100300
    assert caplog.records == []
    _tensorrt(tmp_path / "old", monkeypatch, "__version__ = '8.6.1'\n")
    with pytest.raises(BackendError, match=r"^TensorRT 8\.6\.1 is too old"):
        trt_backend.import_tensorrt()
