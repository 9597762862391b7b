"""`--cache-in F --accuracy-target 0` turns the accuracy search off, the sidecar's choices too:
the search groups the writing run kept float are quantized (they stayed float: the only way to
quantize them was to delete the sidecar). The stem and keep_nodes the sidecar names still
apply, as without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt.quant import sidecar as sidecar_io
from tests.test_cache_sidecar14 import Written, _cache_copy, _quantize_from, written  # noqa: F401

pytestmark = pytest.mark.realmodel


def test_accuracy_target_0_quantizes_the_sidecars_search_groups(
    written: Written,  # noqa: F811
    tmp_path: Path,
) -> None:
    cache = _cache_copy(written, tmp_path)
    off, alone = tmp_path / "off.onnx", tmp_path / "alone.onnx"
    assert _quantize_from(cache, off, written.model, "--accuracy-target", "0", "--no-progress") == 0
    sidecar_io.path_of(cache).unlink()  # the cache's scales alone
    assert _quantize_from(cache, alone, written.model, "--no-progress") == 0
    assert off.read_bytes() != written.quantized
    assert off.read_bytes() == alone.read_bytes()
