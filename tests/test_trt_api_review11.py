"""TensorRT API review 11: graphopt's TensorRT calls checked against TensorRT's real Python API
(10.x and 11.x bindings, NVIDIA/TensorRT sources); each test covers a mismatch found, on the fake
`tensorrt` of tests/trt_fake.py, which answers those calls the way the real bindings do."""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest

from graphopt.backends import tensorrt as trt_backend
from graphopt.backends import trt_runtime
from graphopt.backends.tensorrt import build_engine
from graphopt.errors import BackendError
from tests.trt_fake import FakeDevice, HostMemoryDevice, conv_relu_model, fake_tensorrt

V10 = "10.16.1.11"
V11 = "11.4.0.106"


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
        build_engine(
            conv_relu_model(0.2), tmp_path / "m.plan", int8=True, calibration=batches, cache=cache
        )
    assert sorted(os.listdir(tmp_path)) == []  # no engine, no sidecar, no cache
    assert calls_named(fake, "batches") == [("batches", 2)]  # stopped at the bad batch


def test_a_first_batch_without_the_input_names_it(use_fake, tmp_path):
    """On the first batch: TensorRT found no scales and the build failed as 'TensorRT failed to
    build the engine; run with -vv', with the reason only in stderr."""
    use_fake(V10)
    with pytest.raises(BackendError, match=r"calibration batch 0 has no input 'x'"):
        build_engine(
            conv_relu_model(0.2),
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
            conv_relu_model(0.2), tmp_path / "m.plan", int8=True, calibration=feeds(2), cache=cache
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
            conv_relu_model(0.2), tmp_path / "m.plan", int8=True, calibration=feeds(2), cache=cache
        )
    assert cache.read_bytes() == b"\x00\x01 not a cache"
    assert calls_named(fake, "build_serialized_network") == []


# -- 2. calibration batches: the network input's dtype and the calibration shape ---------------
# get_batch hands TensorRT "device memory containing each network input data" (the
# IInt8Calibrator.get_batch docstring of the 10.x bindings): TensorRT reads it as the input's
# dtype (ITensor.dtype) at the calibration shape, the static shape or the calibration profile's
# kOPT dims (NvInfer.h setCalibrationProfile: "MIN and MAX values will be overwritten by kOPT").
# The feeds went to the device as they were: a float64 .npy was read as float32 garbage, a
# larger or smaller array as another shape (or past the end of the buffer).


def test_float64_calibration_feeds_reach_tensorrt_as_float32(use_fake, tmp_path):
    fake = use_fake(V10)
    batches = feeds(2, dtype=np.float64)
    build_engine(conv_relu_model(0.2), tmp_path / "m.plan", int8=True, calibration=batches)
    assert [a.dtype for a in fake.device.copied] == [np.float32, np.float32]
    for fed, copied in zip(batches, fake.device.copied, strict=True):
        np.testing.assert_array_equal(copied, fed["x"].astype(np.float32))


def test_a_calibration_feed_of_another_shape_is_refused(use_fake, tmp_path):
    use_fake(V10)
    with pytest.raises(
        BackendError,
        match=r"calibration batch 0: input 'x' has shape 1x3x32x32; TensorRT calibrates it "
        r"at 1x3x16x16",
    ):
        build_engine(
            conv_relu_model(0.2),
            tmp_path / "m.plan",
            int8=True,
            calibration=feeds(1, (1, 3, 32, 32)),
        )
    assert os.listdir(tmp_path) == []


def test_a_dynamic_input_calibrates_at_the_profiles_opt_shape(use_fake, tmp_path):
    fake = use_fake(V10)
    model = conv_relu_model(0.2)
    for d, name in zip(model.graph.input[0].type.tensor_type.shape.dim, "N?HW", strict=True):
        if name != "?":
            d.dim_param = name
    shapes = ["x:1x3x16x16,2x3x32x32,4x3x64x64"]
    with pytest.raises(BackendError, match=r"has shape 1x3x16x16; .* at 2x3x32x32 \(--shapes"):
        build_engine(model, tmp_path / "m.plan", int8=True, calibration=feeds(1), shapes=shapes)
    build_engine(
        model, tmp_path / "m.plan", int8=True, calibration=feeds(2, (2, 3, 32, 32)), shapes=shapes
    )
    assert [a.shape for a in fake.device.copied] == [(2, 3, 32, 32)] * 2


def test_a_calibration_feed_that_cannot_become_the_input_dtype_is_refused(use_fake, tmp_path):
    use_fake(V10)
    batches = [{"x": np.zeros((1, 3, 16, 16), np.complex64)}]
    with pytest.raises(BackendError, match=r"input 'x' is complex64; the network takes float32"):
        build_engine(conv_relu_model(0.2), tmp_path / "m.plan", int8=True, calibration=batches)


def test_calibration_images_need_an_opt_batch_of_1(tmp_path):
    """build --calib DIR makes 1x3xHxW images; with --shapes x:1x...,2x...,4x... TensorRT
    calibrates at the opt batch 2: refused before anything is read, naming the opt batch."""
    from graphopt.backends.tensorrt import parse_shapes
    from graphopt.commands.build import calibration_image_size

    shapes = parse_shapes(["x:1x3x16x16,2x3x16x16,4x3x16x16"])
    with pytest.raises(BackendError, match=r"opt shape, batch 2, not the batch of 1"):
        calibration_image_size("x", ["N", 3, 16, 16], shapes)
    assert calibration_image_size("x", ["N", 3, 16, 16], parse_shapes(["x:1x3x16x16"])) == (16, 16)


# -- 3. the timing cache: createTimingCache and setTimingCache can fail -----------------------
# NvInfer.h (release/10.16, the same in 11.1): setTimingCache "return true if set successfully,
# false otherwise" (a cache whose CUDA device properties differ fails unless ignoreMismatch);
# trtexec (shared/utils/cacheUtils.cpp buildTimingCacheFromFile) checks createTimingCache for
# nullptr and setTimingCache for false. graphopt checked neither: get_timing_cache() then
# answered None and the build died on None.serialize() after TensorRT had built the engine.


def test_a_timing_cache_from_another_gpu_is_replaced_not_fatal(use_fake, tmp_path, caplog):
    fake = use_fake(V11)
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"other-gpu timings")
    info = build_engine(conv_relu_model(0.2), tmp_path / "m.plan", timing_cache=timing)
    assert (tmp_path / "m.plan").read_bytes() == b"FAKE-ENGINE:" + V11.encode()
    assert info.timing_cache == str(timing)
    assert timing.read_bytes() == b"+timing"  # a new cache, made on this GPU
    assert calls_named(fake, "set_timing_cache") == [
        ("set_timing_cache", b"other-gpu timings", False),
        ("set_timing_cache", b"", False),
    ]
    assert "timing cache" in caplog.text and "another GPU" in caplog.text


def test_a_file_that_is_no_timing_cache_is_refused_before_the_build(use_fake, tmp_path):
    fake = use_fake(V10)
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"garbage, not timings")
    with pytest.raises(BackendError, match=r"--timing-cache .*timing\.cache: TensorRT cannot read"):
        build_engine(conv_relu_model(0.2), tmp_path / "m.plan", timing_cache=timing)
    assert timing.read_bytes() == b"garbage, not timings"
    assert sorted(os.listdir(tmp_path)) == ["timing.cache"]
    assert calls_named(fake, "build_serialized_network") == []


# -- 4. engine tensors numpy has no type for ---------------------------------------------------
# tensorrt/__init__.py nptype (10.0.1 to 11.4 bindings): FLOAT, HALF, INT8, INT32, INT64, BOOL,
# UINT8, else TypeError ("fp8 and bfloat16 have no equivalent numpy type"). EngineRunner let
# that TypeError out as a traceback for an engine with BF16 (or FP8, INT4, FP4) inputs/outputs.


@pytest.mark.parametrize("version", [V10, V11])
def test_an_engine_with_a_bf16_output_is_a_one_line_error(monkeypatch, version):
    monkeypatch.setitem(
        sys.modules, "tensorrt", fake_tensorrt(version, engine_dtypes={"y": "BF16"})
    )
    with pytest.raises(BackendError, match=r"engine tensor 'y' is BF16, which numpy has no type"):
        trt_runtime.EngineRunner(b"FAKE-ENGINE", device=FakeDevice())


# -- 5. empty engine tensors need a non-null address ------------------------------------------
# NvInferRuntime.h (release/10.16) IExecutionContext::setTensorAddress: "Before calling
# enqueueV3(), each input must have a non-null address and each output must have a non-null
# address or an IOutputAllocator". EngineRunner bound a tensor of zero elements at address 0
# (no buffer was allocated for 0 bytes), so an empty feed failed as 'execute_async_v3 failed'.


@pytest.mark.parametrize("version", [V10, V11])
def test_an_empty_feed_runs_with_non_null_addresses(monkeypatch, version):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version))
    runner = trt_runtime.EngineRunner(b"FAKE-ENGINE", device=HostMemoryDevice())
    out = runner.run({"x": np.zeros((0, 4), np.float32)})["y"]
    assert out.shape == (0, 4)
    assert all(b.ptr for b in runner.bindings)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)  # and it grows from there
    np.testing.assert_array_equal(runner.run({"x": x})["y"], 2 * x + 1)


# -- 6. create_execution_context and set_tensor_address can say no ----------------------------
# pyCore.cpp (release/10.16) binds ICudaEngine::createExecutionContext directly: its nullptr
# (TensorRT could not make a context, e.g. no device memory left) is None; setTensorAddress
# returns false for an address TensorRT refuses (NvInferRuntime.h: at least 256-byte
# alignment). EngineRunner used both unchecked: None.set_input_shape (AttributeError) on the
# first run, and an execute_async_v3 that failed without saying which tensor.


def test_no_execution_context_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(V10, no_context=True))
    with pytest.raises(BackendError, match=r"cannot create an execution context"):
        trt_runtime.EngineRunner(b"FAKE-ENGINE", device=HostMemoryDevice())


def test_a_refused_tensor_address_names_the_tensor(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(V11, aligned_addresses=True))

    class MisalignedDevice(HostMemoryDevice):
        def __init__(self) -> None:
            super().__init__()
            self.shifts: dict[int, int] = {}

        def malloc(self, nbytes: int) -> int:
            ptr = super().malloc(nbytes + 512)
            shifted = ptr + (1 if (ptr + 1) % 256 else 2)  # never 256-byte aligned
            self.shifts[shifted] = ptr
            return shifted

        def free(self, ptr: int) -> None:
            super().free(self.shifts.pop(ptr))

    runner = trt_runtime.EngineRunner(b"FAKE-ENGINE", device=MisalignedDevice())
    with pytest.raises(BackendError, match=r"TensorRT refused the device address of 'x'"):
        runner.run({"x": np.ones((2, 4), np.float32)})


# -- 7. TRT_SYMBOLS names every attribute the backend uses -------------------------------------


def test_trt_symbols_name_itensor_dtype():
    """calibration_inputs reads ITensor.dtype of the network inputs; TRT_SYMBOLS lists it so the
    real-bindings symbol test (tests/test_trt_backend.py, run by
    benchmarks/trt_symbols_offline.sh; passed on the 10.0.1, 10.16.1.11 and 11.4.0.106
    bindings) covers it, and the fake's network inputs carry it."""
    assert "ITensor.dtype" in trt_backend.TRT_SYMBOLS["common"]
    fake = fake_tensorrt(V11)
    network = fake.Builder(fake.Logger()).create_network(0)
    assert fake.OnnxParser(network, None).parse(conv_relu_model(0.2).SerializeToString())
    assert network.get_input(0).dtype == fake.DataType.FLOAT


# -- 8. the CUDA driver: what CudaDevice takes, it gives back ----------------------------------
# cuda.h: a context from cuDevicePrimaryCtxRetain is released with cuDevicePrimaryCtxRelease
# (_v2 since CUDA 11), a stream from cuStreamCreate destroyed with cuStreamDestroy (_v2).
# CudaDevice freed its buffers only: each EngineRunner (one per engine in bench and
# benchmarks/trt_engines.py) and each calibration left a stream and a context reference behind.

_COUNTING_LIBCUDA = r"""
#include <stdlib.h>
typedef unsigned long long CUdeviceptr;
int retains = 0, releases = 0, streams = 0, destroyed = 0;
int cuInit(unsigned int flags) { return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDevicePrimaryCtxRetain(void **ctx, int d) { *ctx = (void *)0x1; retains++; return 0; }
int cuDevicePrimaryCtxRelease_v2(int d) { releases++; return 0; }
int cuCtxSetCurrent(void *ctx) { return 0; }
int cuStreamCreate(void **s, unsigned int f) { *s = (void *)0x2; streams++; return 0; }
int cuStreamDestroy_v2(void *s) { if (s == (void *)0x2) destroyed++; return 0; }
int cuMemAlloc_v2(CUdeviceptr *p, size_t n) { *p = (CUdeviceptr)malloc(n); return 0; }
int cuMemFree_v2(CUdeviceptr p) { free((void *)p); return 0; }
int cuGetErrorString(int e, const char **s) { *s = "CUDA_ERROR_FAKE"; return 0; }
"""


def test_cuda_device_releases_its_stream_and_context(tmp_path, monkeypatch):
    import ctypes
    import gc
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stand-in libcuda")
    (tmp_path / "cuda.c").write_text(_COUNTING_LIBCUDA)
    so = tmp_path / "libcuda_counting.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(tmp_path / "cuda.c")], check=True)
    lib = ctypes.CDLL(str(so))
    monkeypatch.setattr(trt_runtime, "_load_driver", lambda: lib)

    def count(name: str) -> int:
        return ctypes.c_int.in_dll(lib, name).value

    device = trt_runtime.CudaDevice()
    device.malloc(64)
    del device
    gc.collect()
    assert (count("streams"), count("destroyed")) == (1, 1)
    assert (count("retains"), count("releases")) == (1, 1)
    device = trt_runtime.CudaDevice()
    device.close()
    device.close()  # once only
    del device
    gc.collect()
    assert (count("destroyed"), count("releases")) == (2, 2)


# -- 9. engine tensors in host memory ----------------------------------------------------------
# NvInferRuntime.h (release/10.16) ICudaEngine::getTensorLocation: kHOST for a tensor that must
# be on the CPU ("shape tensors inputs are typically required to be on the CPU"), and
# setTensorAddress: "If the TensorLocation of the tensor is kHOST: The pointer must point to a
# host buffer". EngineRunner bound every tensor to device memory: TensorRT would read a host
# pointer that is a device address.


def test_an_engine_with_a_host_tensor_is_refused_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(V10, host_tensors=("x",)))
    with pytest.raises(BackendError, match=r"engine tensor 'x' lives in host memory"):
        trt_runtime.EngineRunner(b"FAKE-ENGINE", device=HostMemoryDevice())


# -- 10. TensorRT 11: create_network(0) -------------------------------------------------------
# The 11.4.0.106 bindings' NetworkDefinitionCreationFlag: "STRONGLY_TYPED : [DEPRECATED]
# Deprecated in TensorRT 11.0. Strongly typed mode is always enabled. This flag is retained for
# API compatibility but is ignored." graphopt still passed it on 11.


@pytest.mark.filterwarnings("error::DeprecationWarning")
@pytest.mark.parametrize("kwargs", [{}, {"fp16": True}, {"strongly_typed": True}])
def test_v11_creates_the_network_without_the_deprecated_flag(use_fake, tmp_path, kwargs):
    fake = use_fake(V11)
    info = build_engine(conv_relu_model(0.2), tmp_path / "m.plan", **kwargs)
    assert calls_named(fake, "create_network") == [("create_network", 0)]
    assert info.strongly_typed


def test_v10_strongly_typed_still_sets_its_flag(use_fake, tmp_path):
    fake = use_fake(V10)
    build_engine(conv_relu_model(0.2), tmp_path / "m.plan", strongly_typed=True)
    assert calls_named(fake, "create_network") == [("create_network", 1 << 1)]


# -- on real TensorRT bindings (wherever `import tensorrt` works; no GPU needed) ---------------


def test_the_calibrator_on_the_real_base_keeps_errors_and_casts():
    """With the 10.x bindings (e.g. through benchmarks/trt_symbols_offline.sh's stubbed
    libnvinfer): get_batch answers None and keeps the error instead of raising into the
    trampoline, and copies float32 for a float32 input."""
    try:
        trt = __import__("tensorrt")
    except (ImportError, OSError) as e:
        pytest.skip(f"tensorrt is not importable here: {e}")
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        pytest.skip(f"TensorRT {trt.__version__} has no IInt8EntropyCalibrator2")
    device = FakeDevice()
    inputs = {"x": trt_backend.CalibrationInput(np.dtype(np.float32), (1, 3, 4, 4))}
    batches = [{"x": np.ones((1, 3, 4, 4), np.float64)}, {"z": np.ones((1, 3, 4, 4))}]
    calib = trt_backend.make_entropy_calibrator(trt, batches, None, device=device, inputs=inputs)
    assert isinstance(calib, trt.IInt8EntropyCalibrator2)
    assert len(calib.get_batch(["x"])) == 1 and device.copied[0].dtype == np.float32
    assert calib.get_batch(["x"]) is None
    assert "calibration batch 1 has no input 'x'" in str(calib.error)


# -- 11. optimization and calibration profiles ------------------------------------------------
# NvInfer.h (release/10.16): addOptimizationProfile returns -1 for a profile that is not valid;
# setCalibrationProfile returns false when it fails, and "MIN and MAX values will be overwritten
# by kOPT". graphopt checked neither result and gave the calibration the very profile object it
# had added as the engine's optimization profile; trtexec (samples/common/sampleEngines.cpp)
# checks both and builds a separate calibration profile (min = opt = max = the opt dims). The
# fake reads the overwrite literally, on the object given, which the config also holds.


def dynamic_conv_model() -> onnx.ModelProto:
    model = conv_relu_model(0.2)
    for d, name in zip(model.graph.input[0].type.tensor_type.shape.dim, "N?HW", strict=True):
        if name != "?":
            d.dim_param = name
    return model


def test_the_calibration_profile_leaves_the_engines_profile_alone(use_fake, tmp_path):
    fake = use_fake(V10)
    build_engine(
        dynamic_conv_model(),
        tmp_path / "m.plan",
        int8=True,
        calibration=feeds(2, (2, 3, 32, 32)),
        shapes=["x:1x3x16x16,2x3x32x32,4x3x64x64"],
    )
    ((_, profiles),) = calls_named(fake, "engine_profiles")
    assert profiles == [{"x": ((1, 3, 16, 16), (2, 3, 32, 32), (4, 3, 64, 64))}]
    assert calls_named(fake, "set_calibration_profile") == [("set_calibration_profile",)]


def test_a_refused_optimization_profile_stops_the_build(use_fake, tmp_path, monkeypatch):
    fake = use_fake(V11)
    monkeypatch.setattr(fake.IBuilderConfig, "add_optimization_profile", lambda self, p: -1)
    with pytest.raises(BackendError, match="TensorRT refused the optimization profile"):
        build_engine(
            dynamic_conv_model(), tmp_path / "m.plan", shapes=["x:1x3x16x16,1x3x32x32,1x3x64x64"]
        )
    assert os.listdir(tmp_path) == []


def test_a_refused_calibration_profile_stops_the_build(use_fake, tmp_path, monkeypatch):
    fake = use_fake(V10)
    monkeypatch.setattr(fake.IBuilderConfig, "set_calibration_profile", lambda self, p: False)
    with pytest.raises(BackendError, match="TensorRT refused the calibration profile"):
        build_engine(
            dynamic_conv_model(),
            tmp_path / "m.plan",
            int8=True,
            calibration=feeds(1),
            shapes=["x:1x3x16x16"],
        )
    assert os.listdir(tmp_path) == []


# -- 12. an ONNX parser that cannot start ------------------------------------------------------
# python/src/parsers/pyOnnx.cpp (release/10.16) binds OnnxParser through a py::init factory
# around nvonnxparser::createParser: its nullptr is pybind's TypeError "factory function
# returned nullptr", which build_engine turned into a one-line error for trt.Builder and
# trt.Runtime (checked here on the real bindings with a stubbed libnvinfer) but not for the
# parser: a traceback.


def test_a_parser_that_cannot_start_is_one_line(use_fake, tmp_path):
    use_fake(V10, no_parser=True)
    with pytest.raises(BackendError, match=r"cannot create its ONNX parser .*nullptr"):
        build_engine(conv_relu_model(0.2), tmp_path / "m.plan")
    assert os.listdir(tmp_path) == []


# -- 13. TensorRT 10.12+: the weak-typing builder flags are deprecated -------------------------
# The 10.16.1.11 bindings' BuilderFlag: FP16, BF16, INT8 "[DEPRECATED] Deprecated in TensorRT
# 10.12. Superseded by strong typing." graphopt set them on 10.x weak typing without a word.


@pytest.mark.parametrize(
    ("version", "noted"), [("10.16.1.11", True), ("10.12.0.36", True), ("10.8.0.43", False)]
)
def test_deprecated_precision_flags_are_noted_from_10_12(use_fake, tmp_path, version, noted):
    fake = use_fake(version)
    info = build_engine(conv_relu_model(0.2), tmp_path / "m.plan", fp16=True)
    assert calls_named(fake, "set_flag") == [("set_flag", "FP16")]  # still set: it works
    said = [n for n in info.notes if "deprecated since TensorRT 10.12" in n]
    assert bool(said) == noted
    if noted:
        assert "--strongly-typed" in said[0] and "FP16" in said[0]
