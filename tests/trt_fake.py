"""A stand-in `tensorrt` module for tests on machines without TensorRT or a GPU.

`fake_tensorrt("10.16.1.11")` or `fake_tensorrt("11.4.0.106")` returns a module object with the
slice of TensorRT's Python API that graphopt's builder touches, shaped like that generation:
the 11.x fake has no `BuilderFlag.FP16/INT8`, no `IInt8EntropyCalibrator2` and no
`IBuilderConfig.int8_calibrator` (as in the real 11.4 bindings). Every call is appended to
`module.calls` as a tuple, so tests can assert on what the builder asked TensorRT to do. The
parser really parses the ONNX bytes (with onnx) and refuses non-standard domains the way
TensorRT's does ("No importer registered for op"). The builder drives an INT8 calibrator the way
TensorRT does: cache first, else batches until `get_batch` returns None, then writes the cache;
as TensorRT's pybind trampoline does, an exception raised in a calibrator method is printed to
stderr and never reaches the builder's caller, and a calibration with no batch fails the build.
"""

from __future__ import annotations

import enum
import struct
import sys
import types
import warnings
from typing import Any

import onnx


def fake_tensorrt(
    version: str = "10.16.1.11",
    *,
    fail_build: bool = False,
    no_builder: bool = False,
    engine_dtypes: dict[str, str] | None = None,
    no_context: bool = False,
    aligned_addresses: bool = False,
    host_tensors: tuple[str, ...] = (),
    no_parser: bool = False,
) -> types.ModuleType:
    """`engine_dtypes`: DataType names of the engine's tensors ("x", "y"; FLOAT by default);
    `no_context`: create_execution_context answers None, as the binding does when TensorRT
    cannot make one (e.g. out of device memory); `aligned_addresses`: set_tensor_address
    answers False for an address that is not 256-byte aligned, as TensorRT's does
    (NvInferRuntime.h: "The pointer must have at least 256-byte alignment"; off by default
    because the host-memory stand-ins of the tests allocate with malloc); `host_tensors`: engine
    tensors whose get_tensor_location is HOST (a shape tensor input), DEVICE for the others;
    `no_parser`: OnnxParser() raises pybind's TypeError, as when createParser returns nullptr
    (python/src/parsers/pyOnnx.cpp binds it through a py::init factory)."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    calls: list[tuple] = []
    trt.calls = calls  # type: ignore[attr-defined]
    trt.parsed_models = []  # type: ignore[attr-defined]

    class Logger:
        class Severity(enum.IntEnum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        def __init__(self, severity: Any = None):
            self.min_severity = severity

    # The real enum values: 10.x has EXPLICIT_BATCH = 0, STRONGLY_TYPED = 1; 11.x dropped
    # EXPLICIT_BATCH and STRONGLY_TYPED = 0.
    if major < 11:
        NetworkDefinitionCreationFlag = enum.IntEnum(  # type: ignore[misc]
            "NetworkDefinitionCreationFlag", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
        )
    else:
        NetworkDefinitionCreationFlag = enum.IntEnum(  # type: ignore[misc]
            "NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 0}
        )

    flag_names = ["TF32", "DEBUG", "REFIT"] + (["FP16", "INT8", "BF16"] if major < 11 else [])
    BuilderFlag = enum.IntEnum("BuilderFlag", flag_names)  # type: ignore[misc]

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    class DataType(enum.IntEnum):  # the real values (10.x and 11.x alike)
        FLOAT = 0
        HALF = 1
        INT8 = 2
        INT32 = 3
        BOOL = 4
        UINT8 = 5
        FP8 = 6
        BF16 = 7
        INT64 = 8
        INT4 = 9

    # what the ONNX parser makes of an ONNX input's element type
    onnx_dtypes = {
        onnx.TensorProto.FLOAT: DataType.FLOAT,
        onnx.TensorProto.FLOAT16: DataType.HALF,
        onnx.TensorProto.BFLOAT16: DataType.BF16,
        onnx.TensorProto.INT8: DataType.INT8,
        onnx.TensorProto.UINT8: DataType.UINT8,
        onnx.TensorProto.INT32: DataType.INT32,
        onnx.TensorProto.INT64: DataType.INT64,
        onnx.TensorProto.BOOL: DataType.BOOL,
    }

    class TensorLocation(enum.IntEnum):
        DEVICE = 0
        HOST = 1

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class ITensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype: Any = DataType.FLOAT):
            self.name = name
            self.shape = shape
            self.dtype = dtype

    class INetworkDefinition:
        def __init__(self, flags: int):
            self.flags = flags
            self.inputs: list[ITensor] = []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int) -> ITensor:
            return self.inputs[i]

    class ParserError:
        def __init__(self, desc: str, node_name: str, node_operator: str):
            self._d, self._n, self._o = desc, node_name, node_operator

        def desc(self) -> str:
            return self._d

        def node_name(self) -> str:
            return self._n

        def node_operator(self) -> str:
            return self._o

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: Logger):
            if no_parser:
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.network = network
            self.errors: list[ParserError] = []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

        def parse(self, data: bytes, path: str | None = None) -> bool:
            calls.append(("parse", len(data)))
            model = onnx.load_from_string(bytes(data))
            trt.parsed_models.append(model)  # type: ignore[attr-defined]
            for node in model.graph.node:
                if node.domain not in ("", "ai.onnx"):
                    self.errors.append(
                        ParserError(
                            f"No importer registered for op: {node.op_type}",
                            node.name,
                            node.op_type,
                        )
                    )
            if self.errors:
                return False
            inits = {t.name for t in model.graph.initializer}
            for vi in model.graph.input:
                if vi.name in inits:
                    continue
                dims = tuple(
                    d.dim_value if d.HasField("dim_value") else -1
                    for d in vi.type.tensor_type.shape.dim
                )
                dtype = onnx_dtypes[vi.type.tensor_type.elem_type]
                self.network.inputs.append(ITensor(vi.name, dims, dtype))
            return True

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
            calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class ITimingCache:
        def __init__(self, blob: bytes):
            self.blob = bytes(blob)

        def serialize(self) -> bytes:
            return self.blob + b"+timing"

    config_slots = ["_timing", "_profiles"] + (["calibrator"] if major < 11 else [])

    class IBuilderConfig:
        __slots__ = tuple(config_slots)

        def __init__(self) -> None:
            self._timing = None
            self._profiles: list[Any] = []
            if major < 11:
                self.calibrator = None

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            calls.append(("set_memory_pool_limit", pool, size))

        def set_flag(self, flag: Any) -> None:
            calls.append(("set_flag", flag.name))

        def add_optimization_profile(self, profile: Any) -> int:
            """The profile's index, or -1 for one that is not valid (here: an empty one); the
            config holds the profile object itself (IBuilderConfig takes a pointer)."""
            calls.append(("add_optimization_profile",))
            if not profile.shapes:
                return -1
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, blob: bytes) -> ITimingCache | None:
            """None (createTimingCache's nullptr) for bytes that are no timing cache: here,
            ones starting with b"garbage"."""
            calls.append(("create_timing_cache", bytes(blob)))
            return None if bytes(blob).startswith(b"garbage") else ITimingCache(blob)

        def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
            """False, and no cache attached, for a cache made on another device (here: bytes
            starting with b"other-gpu") unless `ignore_mismatch`; a TypeError for None (the
            binding takes an ITimingCache reference)."""
            if not isinstance(cache, ITimingCache):
                raise TypeError("set_timing_cache(): incompatible function arguments")
            calls.append(("set_timing_cache", cache.blob, ignore_mismatch))
            if cache.blob.startswith(b"other-gpu") and not ignore_mismatch:
                return False
            self._timing = cache
            return True

        def get_timing_cache(self) -> Any:
            return self._timing

        if major < 11:

            @property
            def int8_calibrator(self) -> Any:
                return self.calibrator

            @int8_calibrator.setter
            def int8_calibrator(self, value: Any) -> None:
                calls.append(("int8_calibrator",))
                self.calibrator = value

            def set_calibration_profile(self, profile: Any) -> bool:
                """As documented ("MIN and MAX values will be overwritten by kOPT"), read
                literally: the min and max of the profile object given become its opt."""
                calls.append(("set_calibration_profile",))
                for name, (_, opt, _) in profile.shapes.items():
                    profile.shapes[name] = (opt, opt, opt)
                return True

    class Builder:
        def __init__(self, logger: Logger):
            if no_builder:  # what the real bindings do when createInferBuilder fails
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.logger = logger

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            if major >= 11 and flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED):
                # 11.x: "[DEPRECATED] Deprecated in TensorRT 11.0. Strongly typed mode is
                # always enabled. This flag is retained for API compatibility but is ignored."
                warnings.warn(
                    "NetworkDefinitionCreationFlag.STRONGLY_TYPED", DeprecationWarning, stacklevel=2
                )
            calls.append(("create_network", flags))
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: Any, config: Any) -> bytes | None:
            calls.append(("build_serialized_network",))
            calls.append(("engine_profiles", [dict(p.shapes) for p in config._profiles]))
            calibrator = getattr(config, "calibrator", None)
            if calibrator is not None and not _calibrate(
                calibrator, [t.name for t in network.inputs]
            ):
                return None
            if fail_build:
                return None
            return b"FAKE-ENGINE:" + version.encode()

    def _callback(what: str, default: Any, method: Any, *args: Any) -> Any:
        """A Python calibrator method called the way TensorRT's pybind trampoline calls it
        (NVIDIA/TensorRT python/src/infer/pyInt8.cpp, pyCalibratorTrampoline): an exception
        does not reach the caller of build_serialized_network; it is printed to stderr and
        the callback answers `default` (get_batch: False, no more batches; read_calibration_cache:
        no cache; get_batch_size: -1; write_calibration_cache: nothing)."""
        try:
            return method(*args)
        except Exception as e:
            print(f"[ERROR] Exception caught in {what}(): {e}", file=sys.stderr)
            return default

    def _calibrate(calibrator: Any, names: list[str]) -> bool:
        """TensorRT's calibration; False where it found no scales (the build then fails)."""
        cached = _callback("read_calibration_cache", None, calibrator.read_calibration_cache)
        calls.append(("read_calibration_cache", None if cached is None else bytes(cached)))
        if cached:
            return True
        batches = 0
        calls.append(("get_batch_size", _callback("get_batch_size", -1, calibrator.get_batch_size)))
        while _callback("get_batch", None, calibrator.get_batch, names):  # None or [] ends it
            batches += 1
        calls.append(("batches", batches))
        if batches == 0:  # "Calibration failure occurred with no scaling factors detected"
            return False
        scale = struct.pack(">f", 0.5).hex()
        header = f"TRT-{major * 10000}-EntropyCalibration2"
        body = "\n".join(f"{n}: {scale}" for n in names)
        cache = f"{header}\n{body}\n".encode()
        _callback(
            "write_calibration_cache", None, calibrator.write_calibration_cache, memoryview(cache)
        )
        return True

    class ICudaEngine:
        """An engine computing y = 2·x + 1 on a float32 input x of shape (N, 4)."""

        tensors = (("x", TensorIOMode.INPUT, (-1, 4)), ("y", TensorIOMode.OUTPUT, (-1, 4)))

        @property
        def num_io_tensors(self) -> int:
            return len(self.tensors)

        def get_tensor_name(self, i: int) -> str:
            return self.tensors[i][0]

        def get_tensor_mode(self, name: str) -> Any:
            return dict((n, m) for n, m, _ in self.tensors)[name]

        def get_tensor_location(self, name: str) -> Any:
            return TensorLocation.HOST if name in host_tensors else TensorLocation.DEVICE

        def get_tensor_dtype(self, name: str) -> Any:
            return DataType[(engine_dtypes or {}).get(name, "FLOAT")]

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return dict((n, s) for n, _, s in self.tensors)[name]

        def create_execution_context(self) -> IExecutionContext | None:
            return None if no_context else IExecutionContext()

    class IExecutionContext:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: Any) -> bool:
            declared = dict((n, s) for n, _, s in ICudaEngine.tensors)[name]
            if len(shape) != len(declared) or any(
                d >= 0 and d != got for d, got in zip(declared, shape, strict=True)
            ):
                return False  # as TensorRT: the shape is refused, the old one stays
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self.shapes["x"]

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            """False, the address not taken, for a name that is no I/O tensor (and, with
            `aligned_addresses`, for a misaligned address), as TensorRT's."""
            known = any(n == name for n, _, _ in ICudaEngine.tensors)
            if not known or (aligned_addresses and ptr % 256):
                return False
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream: int) -> bool:
            """False, as enqueueV3, unless every I/O tensor has a non-null address, empty
            ones included (NvInferRuntime.h setTensorAddress: "Before calling enqueueV3(),
            each input must have a non-null address and each output must have a non-null
            address or an IOutputAllocator")."""
            import ctypes

            import numpy as np

            if any(not self.addresses.get(n) for n, _, _ in ICudaEngine.tensors):
                return False
            count = int(np.prod(self.shapes["x"]))
            if count == 0:
                calls.append(("execute_async_v3", stream))
                return True
            x = np.ctypeslib.as_array(
                ctypes.cast(self.addresses["x"], ctypes.POINTER(ctypes.c_float)), (count,)
            )
            y = np.ctypeslib.as_array(
                ctypes.cast(self.addresses["y"], ctypes.POINTER(ctypes.c_float)), (count,)
            )
            y[:] = 2 * x + 1
            calls.append(("execute_async_v3", stream))
            return True

    class Runtime:
        def __init__(self, logger: Logger):
            self.logger = logger

        def deserialize_cuda_engine(self, plan: bytes) -> ICudaEngine | None:
            return ICudaEngine() if bytes(plan).startswith(b"FAKE-ENGINE") else None

    def nptype(dtype: Any) -> Any:
        """As tensorrt/__init__.py's nptype: no numpy type for BF16, FP8, INT4 (TypeError)."""
        import numpy as np

        mapping = {
            DataType.FLOAT: np.float32,
            DataType.HALF: np.float16,
            DataType.INT8: np.int8,
            DataType.INT32: np.int32,
            DataType.INT64: np.int64,
            DataType.BOOL: np.bool_,
            DataType.UINT8: np.uint8,
        }
        if dtype in mapping:
            return mapping[dtype]
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")

    for name, obj in {
        "Runtime": Runtime,
        "ICudaEngine": ICudaEngine,
        "IExecutionContext": IExecutionContext,
        "nptype": nptype,
        "Logger": Logger,
        "NetworkDefinitionCreationFlag": NetworkDefinitionCreationFlag,
        "BuilderFlag": BuilderFlag,
        "MemoryPoolType": MemoryPoolType,
        "DataType": DataType,
        "TensorIOMode": TensorIOMode,
        "TensorLocation": TensorLocation,
        "ITensor": ITensor,
        "INetworkDefinition": INetworkDefinition,
        "ParserError": ParserError,
        "OnnxParser": OnnxParser,
        "IOptimizationProfile": IOptimizationProfile,
        "ITimingCache": ITimingCache,
        "IBuilderConfig": IBuilderConfig,
        "Builder": Builder,
    }.items():
        setattr(trt, name, obj)

    if major < 11:

        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                calls.append(("calibrator_init",))

        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2  # type: ignore[attr-defined]
    return trt


class FakeDevice:
    """Records what a calibrator copies to the device, instead of a GPU."""

    def __init__(self) -> None:
        self.copied: list[Any] = []
        self.next_ptr = 4096

    def malloc(self, nbytes: int) -> int:
        self.next_ptr += nbytes + 256
        return self.next_ptr

    def to_device(self, ptr: int, array: Any) -> None:
        self.copied.append(array.copy())


def conv_relu_model(weight_scale: float = 0.3) -> onnx.ModelProto:
    """y = Relu(Conv(x, w)), x [1, 3, 16, 16], w [4, 3, 3, 3] seeded: the model the fake
    TensorRT tests build engines of."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32) * weight_scale
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


class HostMemoryDevice:
    """A `CudaDevice` stand-in whose 'device' buffers are host numpy arrays, for the fake
    engine; tracks what is live and what was freed (a pointer freed twice is a KeyError)."""

    def __init__(self) -> None:
        import ctypes

        self.stream = ctypes.c_void_p(0)
        self.live: dict[int, Any] = {}
        self.freed: list[int] = []

    def malloc(self, nbytes: int) -> int:
        import numpy as np

        buf = np.zeros(max(int(nbytes), 1), np.uint8)
        ptr = int(buf.ctypes.data)
        self.live[ptr] = buf
        return ptr

    def free(self, ptr: int) -> None:
        del self.live[ptr]
        self.freed.append(ptr)

    def to_device(self, ptr: int, array: Any) -> None:
        import ctypes

        import numpy as np

        host = np.ascontiguousarray(array)
        ctypes.memmove(ptr, host.ctypes.data, host.nbytes)

    def to_host(self, array: Any, ptr: int) -> None:
        import ctypes

        ctypes.memmove(array.ctypes.data, ptr, array.nbytes)

    def synchronize(self) -> None:
        pass
