"""`graphopt build --int8 --cache` takes every calibration cache `graphopt quantize` writes,
whatever calibrator its header names (MinMaxCalibration for the default minmax method,
EntropyCalibration2, LegacyCalibration, or that of a cache the scales were read from), and
hands TensorRT its scales unchanged under this TensorRT's EntropyCalibration2 header; a cache
read is not written back over the user's file. On a fake `tensorrt` (tests/trt_fake.py)."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.backends import tensorrt as trt_backend
from graphopt.backends import trt_runtime
from graphopt.cli import main
from graphopt.quant import cache as cache_io
from tests.trt_fake import conv_relu_model, fake_tensorrt

V10 = "10.16.1.11"


def _feeds(count: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(count)]


@pytest.fixture
def fake_trt(monkeypatch):
    fake = fake_tensorrt(V10)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))
    return fake


def _build_with_cache(fake, tmp_path, cache) -> dict[str, np.float32]:
    """Build the FP32 model as INT8 from `cache` with the CLI; the scales TensorRT was given
    (its header checked), the cache file unchanged."""
    model = tmp_path / "m.onnx"
    onnx.save(conv_relu_model(), model)
    before = cache.read_bytes()
    rc = main(
        ["build", str(model), "-o", str(tmp_path / "m.plan"), "--int8", "--cache", str(cache)]
    )
    assert rc == 0
    ((_, given),) = [c for c in fake.calls if c[0] == "read_calibration_cache"]
    header, scales = cache_io.loads(given.decode())
    assert header == trt_backend.calibration_cache_tag(fake) == "TRT-101601-EntropyCalibration2"
    assert not [c for c in fake.calls if c[0] == "batches"]  # every scale came from the cache
    assert cache.read_bytes() == before
    return scales


@pytest.mark.parametrize(
    ("method", "algorithm"),
    [
        ("minmax", "MinMaxCalibration"),
        ("entropy", "EntropyCalibration2"),
        ("percentile", "LegacyCalibration"),
        ("mse", "LegacyCalibration"),
    ],
)
def test_build_takes_the_cache_of_every_quantize_method(fake_trt, tmp_path, method, algorithm):
    """Fails on the parent for all but entropy: 'the calibration cache is for
    TRT-8601-MinMaxCalibration, not EntropyCalibration2' (exit 2)."""
    cache = tmp_path / "calib.cache"
    graphopt.quantize(conv_relu_model(), _feeds(), method=method, cache=cache, accuracy_target=None)
    header, written = cache_io.read(cache)
    assert header.endswith(f"-{algorithm}")
    assert _build_with_cache(fake_trt, tmp_path, cache) == written


def test_build_takes_the_default_quantize_cli_cache(fake_trt, tmp_path):
    """The reviewer's case: `graphopt quantize --cache` (minmax, the default) then
    `graphopt build --int8 --cache`. Fails on the parent (exit 2)."""
    model, calib = tmp_path / "m.onnx", tmp_path / "calib"
    onnx.save(conv_relu_model(), model)
    calib.mkdir()
    for i, feed in enumerate(_feeds()):
        np.save(calib / f"{i}.npy", feed["x"])
    cache = tmp_path / "calib.cache"
    args = ["quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--calib", str(calib)]
    assert main([*args, "--cache", str(cache)]) == 0
    header, written = cache_io.read(cache)
    assert header.endswith("-MinMaxCalibration")
    assert _build_with_cache(fake_trt, tmp_path, cache) == written


def test_build_takes_a_cache_quantize_copied_the_header_of(fake_trt, tmp_path):
    """Scales read from TensorRT's first entropy calibrator's cache (`from_cache`) are written
    under its header, EntropyCalibration; build takes that too."""
    source = tmp_path / "trt.cache"
    scales = {"x": np.float32(1 / 127), "c": np.float32(0.05)}
    cache_io.write(source, scales, header="TRT-8601-EntropyCalibration")
    cache = tmp_path / "calib.cache"
    graphopt.quantize(conv_relu_model(), None, from_cache=source, cache=cache, accuracy_target=None)
    header, written = cache_io.read(cache)
    assert header.endswith("-EntropyCalibration")
    assert written["x"] == scales["x"]
    assert _build_with_cache(fake_trt, tmp_path, cache) == written


def test_the_cache_read_is_not_written_back_but_new_scales_are(fake_trt, tmp_path):
    cache = tmp_path / "calib.cache"
    cache_io.write(cache, {"x": np.float32(0.25)}, header="TRT-8601-MinMaxCalibration")
    before = cache.read_bytes()
    calibrator = trt_backend.make_entropy_calibrator(fake_trt, None, cache)
    given = calibrator.read_calibration_cache()
    calibrator.write_calibration_cache(given)  # TensorRT handing the same scales back
    assert cache.read_bytes() == before
    new = b"TRT-101601-EntropyCalibration2\nx: 3f000000\n"
    calibrator.write_calibration_cache(new)  # scales TensorRT calibrated itself
    assert cache.read_bytes() == new
