"""The CUDA side of the TensorRT backend: find a GPU, hold device memory, run an engine.

Device memory goes through the CUDA driver API (`libcuda.so.1`, which every NVIDIA driver
installs) with `ctypes`, so neither cuda-python nor PyTorch is needed. The driver's primary
context is made current, which is the context TensorRT's runtime API calls use too.

`cuda_device_count()` never raises and works on any machine (0 where there is no driver);
`CudaDevice` and `EngineRunner` need a GPU and raise `BackendError` without one. This module
imports TensorRT only when an `EngineRunner` is made, and only through
`graphopt.backends.tensorrt.import_tensorrt`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphopt.errors import BackendError

log = logging.getLogger("graphopt.backends.trt_runtime")

DRIVER_HINT = "TensorRT needs an NVIDIA GPU with its driver installed (nvidia-smi must work)"


def _load_driver() -> Any:
    name = "nvcuda.dll" if sys.platform.startswith("win") else "libcuda.so.1"
    return ctypes.CDLL(name)


def cuda_device_count() -> tuple[int, str]:
    """(number of CUDA devices, why 0 when it is 0). Never raises."""
    try:
        lib = _load_driver()
    except OSError:
        return 0, "no NVIDIA driver found (libcuda.so.1 cannot be loaded)"
    rc = lib.cuInit(0)
    if rc != 0:
        return 0, f"the NVIDIA driver found no usable GPU (cuInit returned {rc})"
    count = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value == 0:
        return 0, "the NVIDIA driver reports no CUDA device"
    return count.value, ""


def require_cuda_device() -> None:
    """Raise `BackendError` (one line, with what to do) unless a CUDA device is present."""
    count, why = cuda_device_count()
    if count == 0:
        raise BackendError(f"no NVIDIA GPU: {why}; {DRIVER_HINT}")


class CudaDevice:
    """Device memory and one stream on GPU `index`, through the CUDA driver API."""

    def __init__(self, index: int = 0):
        require_cuda_device()
        self.lib = _load_driver()
        self._allocations: list[int] = []
        self.stream = ctypes.c_void_p(0)
        self.context = ctypes.c_void_p(0)
        self.device = ctypes.c_int(0)
        self._check(self.lib.cuDeviceGet(ctypes.byref(self.device), index), "cuDeviceGet")
        self._check(
            self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.context), self.device),
            "cuDevicePrimaryCtxRetain",
        )
        self._check(self.lib.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self._check(self.lib.cuStreamCreate(ctypes.byref(self.stream), 0), "cuStreamCreate")

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            text = ctypes.c_char_p()
            self.lib.cuGetErrorString(rc, ctypes.byref(text))
            detail = text.value.decode() if text.value else f"error {rc}"
            raise BackendError(f"CUDA {what} failed: {detail}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_uint64(0)
        size = ctypes.c_size_t(max(int(nbytes), 1))
        self._check(self.lib.cuMemAlloc_v2(ctypes.byref(ptr), size), "cuMemAlloc")
        self._allocations.append(ptr.value)
        return ptr.value

    def free(self, ptr: int) -> None:
        """Free one buffer from `malloc` now (a pointer it did not hand out is ignored)."""
        if ptr in self._allocations:
            self._allocations.remove(ptr)
            self._check(self.lib.cuMemFree_v2(ctypes.c_uint64(ptr)), "cuMemFree")

    def to_device(self, ptr: int, array: np.ndarray) -> None:
        host = np.ascontiguousarray(array)
        self._check(
            self.lib.cuMemcpyHtoD_v2(
                ctypes.c_uint64(ptr),
                host.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_size_t(host.nbytes),
            ),
            "cuMemcpyHtoD",
        )

    def to_host(self, array: np.ndarray, ptr: int) -> None:
        self._check(
            self.lib.cuMemcpyDtoH_v2(
                array.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_uint64(ptr),
                ctypes.c_size_t(array.nbytes),
            ),
            "cuMemcpyDtoH",
        )

    def synchronize(self) -> None:
        self._check(self.lib.cuStreamSynchronize(self.stream), "cuStreamSynchronize")

    def free_all(self) -> None:
        while self._allocations:
            self.lib.cuMemFree_v2(ctypes.c_uint64(self._allocations.pop()))

    def close(self) -> None:
        """Free every buffer, destroy the stream and release the primary context retained in
        `__init__` (the driver API pairs cuStreamCreate with cuStreamDestroy and
        cuDevicePrimaryCtxRetain with cuDevicePrimaryCtxRelease); a second call does nothing."""
        self.free_all()
        if self.stream.value:
            stream, self.stream = self.stream, ctypes.c_void_p(0)
            self.lib.cuStreamDestroy_v2(stream)
        if self.context.value:
            self.context = ctypes.c_void_p(0)
            self.lib.cuDevicePrimaryCtxRelease_v2(self.device)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at shutdown the driver may be gone already
            self.close()


@dataclass
class _Binding:
    name: str
    is_input: bool
    dtype: Any
    ptr: int = 0
    nbytes: int = 0
    shape: tuple[int, ...] = field(default_factory=tuple)


def _no_progress(done: int) -> None:
    """`EngineRunner.time_runs`'s `on_run` when no one follows the runs."""


class EngineRunner:
    """Deserialize a serialized engine and run it on numpy feeds (one stream, one context)."""

    def __init__(self, plan: bytes, *, device: CudaDevice | None = None):
        from graphopt.backends.tensorrt import import_tensorrt, trt_logger

        self.trt = trt = import_tensorrt()
        self.device = device or CudaDevice()
        try:
            self.runtime = trt.Runtime(trt_logger(trt))
        except TypeError as e:  # pybind11: "factory function returned nullptr"
            raise BackendError(
                f"TensorRT cannot create a runtime ({e}): is the GPU usable and the driver new "
                "enough for this TensorRT?"
            ) from e
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise BackendError(
                "TensorRT cannot deserialize the engine (built by another TensorRT version or "
                "for another GPU?); rebuild it with graphopt build"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:  # the binding's None for TensorRT's nullptr
            raise BackendError(
                "TensorRT cannot create an execution context for the engine (out of device "
                "memory?); run with -vv for its log"
            )
        self.bindings = [
            _Binding(
                name,
                self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                self._numpy_dtype(name),
            )
            for name in (self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors))
        ]

        for b in self.bindings:  # TensorRT dereferences a HOST tensor's address on the CPU
            if self.engine.get_tensor_location(b.name) == trt.TensorLocation.HOST:
                raise BackendError(
                    f"engine tensor {b.name!r} lives in host memory (a shape tensor): "
                    "graphopt's runner binds device memory only"
                )

    def _numpy_dtype(self, name: str) -> np.dtype:
        """The numpy dtype of engine tensor `name`; `BackendError` for BF16, FP8, INT4, FP4,
        for which `trt.nptype` raises TypeError (numpy has no such type)."""
        dtype = self.engine.get_tensor_dtype(name)
        try:
            return np.dtype(self.trt.nptype(dtype))
        except TypeError:
            shown = getattr(dtype, "name", str(dtype))
            raise BackendError(
                f"engine tensor {name!r} is {shown}, which numpy has no type for: graphopt "
                "cannot feed or read it (build the engine with float32/float16 I/O)"
            ) from None

    @property
    def input_names(self) -> list[str]:
        return [b.name for b in self.bindings if b.is_input]

    def _prepare(self, feeds: dict[str, np.ndarray]) -> None:
        for b in self.bindings:
            if not b.is_input:
                continue
            if b.name not in feeds:
                raise BackendError(f"no feed for engine input {b.name!r}")
            arr = np.ascontiguousarray(feeds[b.name], dtype=b.dtype)
            if not self.context.set_input_shape(b.name, arr.shape):
                raise BackendError(
                    f"engine input {b.name!r} cannot take shape {arr.shape}: {self._takes(b.name)}"
                )
            self._ensure(b, arr.shape)
            self.device.to_device(b.ptr, arr)
        for b in self.bindings:
            if not b.is_input:
                self._ensure(b, tuple(self.context.get_tensor_shape(b.name)))

    def _takes(self, name: str) -> str:
        """What input `name` takes: its engine shape (-1 where dynamic) and, from the engine's
        profile 0 (get_tensor_profile_shape: [min, opt, max]), the range of a dynamic one. The
        engine shape alone was called 'the optimization profile' and showed only -1s."""
        declared = tuple(int(d) for d in self.engine.get_tensor_shape(name))
        if all(d >= 0 for d in declared):
            return f"the engine takes {declared}"
        try:
            low, _, high = (
                tuple(int(d) for d in s) for s in self.engine.get_tensor_profile_shape(name, 0)
            )
        except (AttributeError, TypeError, ValueError, RuntimeError):  # no profile to show
            return f"the engine takes {declared}"
        return f"the engine takes {declared} from {low} to {high} (its optimization profile)"

    def _ensure(self, b: _Binding, shape: tuple[int, ...]) -> None:
        if any(d < 0 for d in shape):
            raise BackendError(f"engine tensor {b.name!r} has an unresolved shape {shape}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * b.dtype.itemsize
        # not b.ptr: an empty tensor needs an address too (enqueueV3 wants every I/O tensor
        # non-null, NvInferRuntime.h setTensorAddress); malloc gives it at least one byte
        if nbytes > b.nbytes or not b.ptr:
            if b.ptr:  # grown: the old buffer goes now, not at free_all (nothing runs on it)
                old, b.ptr, b.nbytes = b.ptr, 0, 0
                self.device.free(old)
            b.ptr = self.device.malloc(nbytes)
            b.nbytes = nbytes
        b.shape = tuple(int(d) for d in shape)
        if not self.context.set_tensor_address(b.name, b.ptr):
            raise BackendError(
                f"TensorRT refused the device address of {b.name!r} (it wants 256-byte aligned "
                "device memory); run with -vv for its log"
            )

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.device.stream.value or 0):
            raise BackendError("TensorRT execute_async_v3 failed; run with -vv for its log")
        self.device.synchronize()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy `feeds` in, execute, copy every output back."""
        self._prepare(feeds)
        self.execute()
        outputs = {}
        for b in self.bindings:
            if not b.is_input:
                out = np.empty(b.shape, dtype=b.dtype)
                self.device.to_host(out, b.ptr)
                outputs[b.name] = out
        return outputs

    def time_runs(
        self,
        feeds: dict[str, np.ndarray],
        runs: int,
        warmup: int,
        on_run: Callable[[int], None] | None = None,
    ) -> list[float]:
        """Seconds per `execute` (inputs already on the device, outputs not copied back).
        `on_run(done)` is called with 0 before the first run and with the count of runs done,
        warmup included, after each (outside the timed span)."""
        tick = on_run or _no_progress
        self._prepare(feeds)
        tick(0)
        for done in range(1, warmup + 1):
            self.execute()
            tick(done)
        times = []
        for done in range(warmup + 1, warmup + runs + 1):
            start = time.perf_counter()
            self.execute()
            times.append(time.perf_counter() - start)
            tick(done)
        return times
