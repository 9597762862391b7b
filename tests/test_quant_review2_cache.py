"""TensorRT calibration caches (adversarial review): scales read from a cache and written again
keep the calibrator the cache names."""

from __future__ import annotations

import graphopt
from graphopt.quant import cache as cache_io
from tests.test_quant_api import conv_model, feeds


def test_a_cache_written_from_a_cache_keeps_its_calibrator(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An EntropyCalibration2 cache re-written with `from_cache` was headed MinMaxCalibration
    (the default method's), which an IInt8EntropyCalibrator2 deployment refuses."""
    first, second = tmp_path / "entropy.cache", tmp_path / "again.cache"
    graphopt.quantize(conv_model(), feeds(), "entropy", cache=first, accuracy_target=None)
    graphopt.quantize(conv_model(), None, cache=second, from_cache=first)
    assert first.read_text().splitlines()[0] == "TRT-8601-EntropyCalibration2"
    assert second.read_bytes() == first.read_bytes()
    graphopt.quantize(conv_model(), None, cache=second, from_cache=first, trt_version="10.3.0")
    assert second.read_text().splitlines()[0] == "TRT-100300-EntropyCalibration2"


def test_header_algorithm() -> None:
    assert cache_io.header_algorithm("TRT-8601-EntropyCalibration2") == "EntropyCalibration2"
    assert cache_io.header_algorithm("TRT-100300-MinMaxCalibration ") == "MinMaxCalibration"
    assert cache_io.header_algorithm("TRT-x-EntropyCalibration2") is None
    assert cache_io.header("minmax", "8.6.1", "EntropyCalibration2") == (
        "TRT-8601-EntropyCalibration2"
    )
    assert cache_io.header("minmax", "8.6.1") == "TRT-8601-MinMaxCalibration"
