"""TensorRT API review 11: graphopt's TensorRT calls checked against TensorRT's real Python API
(10.x and 11.x bindings, NVIDIA/TensorRT sources); each test covers a mismatch found, on the fake
`tensorrt` of tests/trt_fake.py, which answers those calls the way the real bindings do."""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends import tensorrt as trt_backend
from graphopt.backends import trt_runtime
from graphopt.backends.tensorrt import build_engine
from graphopt.errors import BackendError
from tests.trt_fake import FakeDevice, fake_tensorrt

V10 = "10.16.1.11"
V11 = "11.4.0.106"


def conv_model() -> onnx.ModelProto:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.fixture
def use_fake(monkeypatch):
    """A fake `tensorrt` of the given version, a GPU pretended, a fake device for the
    calibrator's copies."""

    def install(version: str, **kwargs):
        fake = fake_tensorrt(version, **kwargs)
        fake.device = FakeDevice()
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))
        monkeypatch.setattr(trt_runtime, "CudaDevice", lambda: fake.device)
        return fake

    return install


def calls_named(fake, name: str) -> list[tuple]:
    return [c for c in fake.calls if c[0] == name]


def feeds(count: int, shape=(1, 3, 16, 16), dtype=np.float32) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.uniform(-1, 1, shape).astype(dtype)} for _ in range(count)]


# -- 1. calibrator callbacks: TensorRT's trampoline swallows their exceptions ------------------
# NVIDIA/TensorRT python/src/infer/pyInt8.cpp (release/10.16), pyCalibratorTrampoline: getBatch,
# readCalibrationCache and writeCalibrationCache catch every exception, print it to std::cerr and
# answer false / nullptr / nothing. A BackendError raised in get_batch never reached build_engine.


def test_a_batch_without_the_input_stops_the_build_naming_it(use_fake, tmp_path):
    """Batch 2 lacks input 'x': TensorRT took that as the end of the data and built an engine
    calibrated on batches 0 and 1, without a word; now the build stops with the error."""
    fake = use_fake(V10)
    batches = [*feeds(2), {"z": np.zeros((1, 3, 16, 16), np.float32)}]
    cache = tmp_path / "c.cache"
    with pytest.raises(BackendError, match=r"calibration batch 2 has no input 'x'"):
        build_engine(conv_model(), tmp_path / "m.plan", int8=True, calibration=batches, cache=cache)
    assert sorted(os.listdir(tmp_path)) == []  # no engine, no sidecar, no cache
    assert calls_named(fake, "batches") == [("batches", 2)]  # stopped at the bad batch


def test_a_first_batch_without_the_input_names_it(use_fake, tmp_path):
    """On the first batch: TensorRT found no scales and the build failed as 'TensorRT failed to
    build the engine; run with -vv', with the reason only in stderr."""
    use_fake(V10)
    with pytest.raises(BackendError, match=r"calibration batch 0 has no input 'x'"):
        build_engine(
            conv_model(),
            tmp_path / "m.plan",
            int8=True,
            calibration=[{"images": np.zeros((1, 3, 16, 16), np.float32)}],
        )
    assert os.listdir(tmp_path) == []


def test_a_calibration_cache_that_cannot_be_written_fails_the_build(
    use_fake, tmp_path, monkeypatch
):
    """write_calibration_cache's OSError was printed by TensorRT and the build reported success
    with no cache written."""
    use_fake(V10)
    cache = tmp_path / "c.cache"
    real_write = trt_backend.write_atomic

    def refuse_the_cache(path, data):
        if str(path) == str(cache):
            raise PermissionError(13, "Permission denied", str(path))
        real_write(path, data)

    monkeypatch.setattr(trt_backend, "write_atomic", refuse_the_cache)
    with pytest.raises(BackendError, match=r"cannot write the calibration cache .*c\.cache"):
        build_engine(
            conv_model(), tmp_path / "m.plan", int8=True, calibration=feeds(2), cache=cache
        )
    assert os.listdir(tmp_path) == []


def test_an_unusable_calibration_cache_is_refused_before_tensorrt_calibrates(use_fake, tmp_path):
    """A cache that is no calibration cache: read_calibration_cache's BackendError became 'no
    cache' inside TensorRT, which then calibrated on the batches and wrote its own cache over
    the user's file; now it is refused before the build and the file is left alone."""
    fake = use_fake(V10)
    cache = tmp_path / "c.cache"
    cache.write_bytes(b"\x00\x01 not a cache")
    with pytest.raises(BackendError, match="cannot use the calibration cache"):
        build_engine(
            conv_model(), tmp_path / "m.plan", int8=True, calibration=feeds(2), cache=cache
        )
    assert cache.read_bytes() == b"\x00\x01 not a cache"
    assert calls_named(fake, "build_serialized_network") == []
