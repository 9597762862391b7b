"""Build TensorRT engines from graphopt's ONNX output, on TensorRT 10 and TensorRT 11.

`build_engine(model, "model.plan", ...)` parses an optimized (or Q/DQ-quantized) ONNX model with
TensorRT's ONNX parser, builds a serialized engine and writes it atomically (temporary file +
rename) with a JSON sidecar `model.plan.json` (TensorRT version, precision, shapes, source
model sha256, graphopt version). TensorRT is imported only when a build starts
(`pip install 'graphopt[tensorrt]'`); `import graphopt` never touches it.

The two TensorRT generations differ, and `plan_build` decides what to do, without TensorRT:

- TensorRT 11 removed weak typing: no `BuilderFlag.FP16/INT8`, no `IInt8EntropyCalibrator2`.
  Every network is strongly typed (`create_network(0)`: 11.0 deprecated the STRONGLY_TYPED
  flag and ignores it); INT8 comes only from Q/DQ nodes in the model (`graphopt quantize`),
  FP16 from the model's own types, so `fp16=True` rewrites the ONNX model to float16 (I/O kept
  float32) before parsing (`graphopt.backends.fp16.fp16_model`, importable from here too).
- TensorRT 10: the same Q/DQ path (weakly typed with `BuilderFlag.INT8`, plus `FP16` when asked,
  or strongly typed on request), and the legacy implicit-INT8 path for a model without Q/DQ: an
  `IInt8EntropyCalibrator2` fed with graphopt's calibration batches, reading and writing
  graphopt's calibration cache (deprecated by NVIDIA since 10.1; kept for users who need it).

Every TensorRT attribute this module and `trt_runtime` use is listed in `TRT_SYMBOLS`, so a test
can check them against an installed TensorRT. What it does not do: pick tactics, manage plugins,
or run engines (`graphopt.backends.trt_runtime`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphopt._text import escaped_name, shown, split_escaped

# float16 rewriting moved to its own module; its public names stay importable from here
from graphopt.backends.fp16 import FLOAT32_ONLY_OPS as FLOAT32_ONLY_OPS
from graphopt.backends.fp16 import FP16_LEAST as FP16_LEAST
from graphopt.backends.fp16 import FP16_MAX as FP16_MAX
from graphopt.backends.fp16 import FP16_TOLERANCE as FP16_TOLERANCE
from graphopt.backends.fp16 import fp16_error as fp16_error
from graphopt.backends.fp16 import fp16_model as fp16_model
from graphopt.errors import BackendError, first_line

log = logging.getLogger("graphopt.backends.tensorrt")

INSTALL_HINT = "pip install 'graphopt[tensorrt]' (TensorRT needs an NVIDIA GPU and driver)"

# Every TensorRT attribute used by this backend: "Class.member" or a module-level name.
TRT_SYMBOLS: dict[str, tuple[str, ...]] = {
    # both generations
    "common": (
        "__version__",
        "Logger",
        "Logger.Severity",
        "Builder",
        "Builder.create_network",
        "Builder.create_builder_config",
        "Builder.create_optimization_profile",
        "Builder.build_serialized_network",
        "INetworkDefinition.num_inputs",
        "INetworkDefinition.get_input",
        "ITensor.name",
        "ITensor.shape",
        "ITensor.dtype",
        "OnnxParser",
        "OnnxParser.parse",
        "OnnxParser.num_errors",
        "OnnxParser.get_error",
        "ParserError.desc",
        "ParserError.node_name",
        "ParserError.node_operator",
        "IBuilderConfig.set_memory_pool_limit",
        "MemoryPoolType.WORKSPACE",
        "IBuilderConfig.create_timing_cache",
        "IBuilderConfig.set_timing_cache",
        "IBuilderConfig.get_timing_cache",
        "ITimingCache.serialize",
        "IBuilderConfig.add_optimization_profile",
        "IOptimizationProfile.set_shape",
        # trt_runtime
        "Runtime",
        "Runtime.deserialize_cuda_engine",
        "ICudaEngine.num_io_tensors",
        "ICudaEngine.get_tensor_name",
        "ICudaEngine.get_tensor_mode",
        "ICudaEngine.get_tensor_dtype",
        "ICudaEngine.get_tensor_shape",
        "ICudaEngine.get_tensor_profile_shape",
        "ICudaEngine.create_execution_context",
        "IExecutionContext.set_input_shape",
        "IExecutionContext.get_tensor_shape",
        "IExecutionContext.set_tensor_address",
        "IExecutionContext.execute_async_v3",
        "TensorIOMode.INPUT",
        "ICudaEngine.get_tensor_location",
        "TensorLocation.HOST",
        "nptype",
    ),
    # TensorRT 10 only: weak typing and the legacy calibrator
    "tensorrt10": (
        "NetworkDefinitionCreationFlag.STRONGLY_TYPED",  # 11: deprecated, ignored, not passed
        "BuilderFlag.FP16",
        "BuilderFlag.INT8",
        "IBuilderConfig.set_flag",
        "IBuilderConfig.int8_calibrator",
        "IBuilderConfig.set_calibration_profile",
        "IInt8EntropyCalibrator2",
        "IInt8EntropyCalibrator2.get_batch",
        "IInt8EntropyCalibrator2.get_batch_size",
        "IInt8EntropyCalibrator2.read_calibration_cache",
        "IInt8EntropyCalibrator2.write_calibration_cache",
    ),
    # TensorRT 11 has removed these: the backend must never reach them there
    "removed_in_11": (
        "BuilderFlag.FP16",
        "BuilderFlag.INT8",
        "IBuilderConfig.int8_calibrator",
        "IBuilderConfig.set_calibration_profile",
        "IInt8EntropyCalibrator2",
    ),
}

# ---------------------------------------------------------------------------------------------
# importing TensorRT


def import_tensorrt() -> Any:
    """The `tensorrt` module, or `BackendError` (one line, with how to install it)."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as e:  # (its first line: a failed extension import can run to several)
        raise BackendError(f"TensorRT is not installed ({first_line(e)}): {INSTALL_HINT}") from e
    except OSError as e:  # the bindings are there but libnvinfer is not
        raise BackendError(
            f"TensorRT cannot load its libraries ({first_line(e)}): {INSTALL_HINT}"
        ) from e
    except Exception as e:  # a package there whose import fails otherwise (a RuntimeError or
        # ValueError of its own checks, a SyntaxError of a wheel for another Python): it was a
        # traceback and exit 1 from build and bench --backend tensorrt
        raise BackendError(
            f"TensorRT cannot be imported ({type(e).__name__}: {first_line(e)}): {INSTALL_HINT}"
        ) from e
    trt_major(trt)  # reject unsupported versions early
    return trt


def trt_version(trt: Any) -> str:
    """The module's `__version__`, stripped: `installed_version_problem` takes ' 10.3.0 ' (a
    build's padded string), which `trt_major` read as major 0 ('TensorRT  10.3.0 is too old')."""
    return str(getattr(trt, "__version__", "0")).strip()


def trt_major(trt: Any) -> int:
    """Major version of a `tensorrt` module; `BackendError` unless it is 10 or newer, or when
    it has no version string (it was 'TensorRT 0 is too old')."""
    from graphopt.quant.cache import installed_version_problem

    problem = installed_version_problem(trt)
    if problem is not None:
        raise BackendError(f"{problem}: {INSTALL_HINT}")
    m = re.match(r"(\d+)", trt_version(trt))
    major = int(m.group(1)) if m else 0
    if major < 10:
        raise BackendError(
            f"TensorRT {trt_version(trt)} is too old: graphopt builds with TensorRT 10 or 11 "
            f"({INSTALL_HINT})"
        )
    return major


def calibration_cache_tag(trt: Any) -> str:
    """TensorRT's calibration-cache header: `TRT-<NV_TENSORRT_VERSION>-EntropyCalibration2`,
    with the version as TensorRT encodes it (major·10000 + minor·100 + patch, e.g. 101601)."""
    parts = [int(p) for p in re.findall(r"\d+", trt_version(trt))[:3]] + [0, 0, 0]
    code = parts[0] * 10000 + parts[1] * 100 + parts[2]
    return f"TRT-{code}-EntropyCalibration2"


def trt_logger(trt: Any, verbose: int | None = None) -> Any:
    """A `trt.Logger` whose severity follows graphopt's logging level (-v info, -vv verbose)."""
    if verbose is None:
        level = logging.getLogger("graphopt").getEffectiveLevel()
        verbose = 2 if level <= logging.DEBUG else (1 if level <= logging.INFO else 0)
    severity = trt.Logger.Severity
    return trt.Logger([severity.WARNING, severity.INFO, severity.VERBOSE][min(verbose, 2)])


# ---------------------------------------------------------------------------------------------
# shapes


@dataclass(frozen=True)
class ShapeRange:
    """One optimization-profile entry: min / opt / max dims of one input."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


# what a backslash escapes in the NAME of a NAME:DIMS spec (and a backslash), as a name list
# escapes a comma (commands._common.comma_list): '\:' is needed where NAME has a space (a
# ':' in any word of it but the last ended the spec there), '\,' is taken for consistency
SPEC_ESCAPES = ":,"


def _specs(item: str, escapes: str = SPEC_ESCAPES) -> list[str]:
    """The NAME:DIMS specs of one --shapes word, split at white space, a part with no ':'
    (or with only escaped ones, `\\:`) joined to the part after it (a name with spaces:
    'input 1:1x3', 'a\\:b c:1x3')."""
    parts = re.split(r"(\s+)", item.strip())  # words, with the spaces between them
    specs: list[str] = []
    pending = ""
    for k in range(0, len(parts), 2):
        pending = pending + parts[k - 1] + parts[k] if pending else parts[k]
        if split_escaped(parts[k], ":", escapes) is not None:
            specs.append(pending)
            pending = ""
    if pending:
        specs.append(pending)  # (no ':': refused as such)
    return specs


def shape_text(name: str, dims: str) -> str:
    """NAME:DIMS as `parse_shapes` reads it back, not quoted for a shell: each backslash in
    the name doubled and, where the name has white space (which parts specs), each ':' in it
    written `\\:` ('a:b c:1x3' was read as 'a' of dims 'b', then 'c')."""
    colons = ":" if any(c.isspace() for c in name) else ""
    return f"{escaped_name(name, colons)}:{dims}"


def shape_spec(name: str, dims: str) -> str:
    """NAME:DIMS as a user types it after --shapes: escaped as `shape_text` writes it, and
    quoted where the name has a space or a character a shell reads ('--shapes a b:MIN,OPT,MAX'
    gave two words)."""
    return shlex.quote(shape_text(name, dims))


_INT64_MAX = 2**63 - 1  # the largest dim ONNX's TensorShapeProto and TensorRT's Dims64 hold
_DIM_TEXT = re.compile(r"-?[0-9]+")  # a dim as NAME:DIMS gives it ([0-9]: ASCII digits only)


def _beyond_int64(digits: str) -> bool:
    """Whether the decimal `digits` (ASCII, maybe after a '-') are a number whose size is above
    `_INT64_MAX`, told without int() of a long string (Python refuses one over 4300 digits, a
    ValueError)."""
    digits = digits.lstrip("-").lstrip("0")
    return len(digits) > 19 or int(digits or "0") > _INT64_MAX


def dim_value(text: str) -> int | None:
    """The dim `text` as NAME:DIMS reads it (`parse_shapes`), for another form of dims (merge's
    --macs-shape INPUT=D0,D1,...): ASCII decimal digits, maybe after a '-' (no dim is below 1,
    which the caller says), at most 2**63 - 1 in size; else None."""
    if not _DIM_TEXT.fullmatch(text) or _beyond_int64(text):
        return None
    return int(text)


def parse_shapes(
    specs: Iterable[str] | str | None,
    option: str = "--shapes",
    *,
    escapes: str = SPEC_ESCAPES,
) -> dict[str, ShapeRange]:
    """`["input:1x3x640x640", "x:1x3x320x320,1x3x640x640,1x3x1280x1280"]` → {name: ShapeRange}.

    One dims string is min = opt = max; three comma-separated ones are min, opt, max. Several
    inputs may be given in one string separated by spaces. The name is everything before the
    last ':' (tensor names may contain ':', 'x:0:1x3' names 'x:0'), spaces too: a word with no
    ':' belongs to the next one (`--shapes 'input 1:1x3'` named 'input', whose name has a
    space). A backslash escapes a ':' in the name (`'a\\:b c:1x3'` names 'a:b c', which the
    spaces otherwise cut after 'a:b'), a ',' and a backslash, and so does one before a
    character of `escapes` (merge's --macs-shape: '='); one before anything else is itself. A
    spec whose every ':' is escaped is cut at its last ':' as before (a name ending in a
    backslash: 'a\\:1x3'). A dim is ASCII decimal digits, at most 2**63 - 1 (an int64). Errors
    name `option`, the flag it came from."""
    if specs is None:
        return {}
    if isinstance(specs, str):
        specs = [specs]
    shapes: dict[str, ShapeRange] = {}
    for spec in (s for item in specs for s in _specs(item, escapes)):
        cut = split_escaped(spec, ":", escapes, last=True)
        every_colon_escaped = cut is None and ":" in spec
        if every_colon_escaped:  # as before: a name ending in a backslash, 'a\:1x3'
            name, _, dims_text = spec.rpartition(":")
        else:
            name, dims_text = cut or ("", "")
        expected = f"bad {option} {spec!r}: expected NAME:1x3x640x640 or NAME:MIN,OPT,MAX"
        if not name:
            raise BackendError(expected)
        if every_colon_escaped:  # what follows the last ':' is no dims: one escaped too many
            expected += " (each ':' in it is escaped: \\: is a ':' in NAME)"
        groups = dims_text.split(",")
        if len(groups) not in (1, 3):
            raise BackendError(
                expected
                if every_colon_escaped
                else f"bad {option} {spec!r}: give one shape or three (min,opt,max), not "
                f"{len(groups)}"
            )
        texts = [g.lower().split("x") for g in groups]
        # ASCII digits only (a '-' before them is told below: no dim is below 1): int() also
        # took '1_0' (as 10), '+1', ' 1' and other scripts' digits ('１')
        if not all(_DIM_TEXT.fullmatch(d) for t in texts for d in t):
            raise BackendError(
                expected
                if every_colon_escaped
                else f"bad {option} {spec!r}: dimensions must be integers (digits 0-9) joined by 'x'"
            )
        beyond = next((d for t in texts for d in t if _beyond_int64(d)), None)
        if beyond is not None:  # (graphopt check said "0 errors" of x:9999999999999999999999)
            raise BackendError(
                f"bad {option} {spec!r}: dimension {beyond} is too large: dims must be below "
                "2**63 (an int64, in ONNX and TensorRT alike)"
            )
        dims = [tuple(int(d) for d in t) for t in texts]
        if len(groups) == 1:
            dims = dims * 3
        lo, opt, hi = dims
        if not len(lo) == len(opt) == len(hi):
            raise BackendError(f"bad {option} {spec!r}: min, opt and max have different ranks")
        if any(d <= 0 for d in lo) or not all(
            a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)
        ):
            raise BackendError(
                f"bad {option} {spec!r}: need 0 < min <= opt <= max in every dimension"
            )
        given = ShapeRange(lo, opt, hi)
        if shapes.get(name, given) != given:  # a repeat that says another shape: which one?
            raise BackendError(f"{option} gives {name!r} twice, with different shapes")
        shapes[name] = given
    return shapes


def unknown_profiles_error(
    unknown: Iterable[str], inputs: Iterable[str], holder: str
) -> BackendError:
    """The error for `--shapes` naming `unknown`, which the model or network (`holder`) whose
    inputs are `inputs` does not have: the names there are, or that there are none (the
    build said "(inputs: )" for a network without inputs)."""
    names = [shown(name) for name in inputs]
    have = f"inputs: {', '.join(names)}" if names else "it has no inputs"
    return BackendError(
        f"--shapes names {', '.join(map(shown, unknown))}, which the {holder} does not have "
        f"({have})"
    )


def fill_profile(name: str, declared: Sequence[int], given: ShapeRange | None) -> ShapeRange | None:
    """The profile for a network input with `declared` dims (-1 = dynamic): `given` checked
    against the static dims; None when the input is fully static and nothing was given."""
    declared = tuple(int(d) for d in declared)
    if given is None:
        if any(d < 0 for d in declared):
            shown = "x".join("?" if d < 0 else str(d) for d in declared)
            raise BackendError(
                f"input {name!r} has dynamic dimensions ({shown}): give a profile with "
                f"--shapes {shape_spec(name, 'MIN,OPT,MAX')} (e.g. "
                + shape_spec(name, "x".join("1" if d < 0 else str(d) for d in declared))
                + ")"
            )
        return None
    if len(given.opt) != len(declared):
        raise BackendError(
            f"--shapes {name}: rank {len(given.opt)} does not match the model's rank {len(declared)}"
        )
    for axis, d in enumerate(declared):
        if d >= 0 and not given.min[axis] == given.opt[axis] == given.max[axis] == d:
            raise BackendError(
                f"--shapes {name}: axis {axis} is fixed to {d} in the model, not {given.opt[axis]}"
            )
    return given


# ---------------------------------------------------------------------------------------------
# what to build


@dataclass(frozen=True)
class BuildPlan:
    """What a build does on one TensorRT generation; made by `plan_build`, no TensorRT needed."""

    major: int
    precision: str  # "fp32", "fp16", "int8", "int8+fp16"
    strongly_typed: bool
    flags: tuple[str, ...] = ()  # BuilderFlag member names (TensorRT 10 weak typing only)
    calibrator: bool = False  # TensorRT 10 implicit INT8 via IInt8EntropyCalibrator2
    convert_fp16: bool = False  # rewrite the ONNX model to float16 before parsing
    notes: tuple[str, ...] = ()


def plan_build(
    major: int,
    *,
    has_qdq: bool,
    fp16: bool = False,
    int8: bool = False,
    calibration: bool = False,
    strongly_typed: bool | None = None,
) -> BuildPlan:
    """Decide flags, typing and calibration for TensorRT `major`.

    `has_qdq`: the model holds QuantizeLinear/DequantizeLinear (explicit quantization).
    `int8`: the user asked for INT8; `calibration`: calibration batches or a cache are given.
    `strongly_typed`: None = the version's default (10: weak typing, 11: strong).
    """
    quantized = has_qdq or int8
    precision = ("int8" if quantized else "fp16" if fp16 else "fp32") + (
        "+fp16" if quantized and fp16 else ""
    )
    notes: list[str] = []
    if has_qdq and calibration:
        notes.append(
            "the model already has Q/DQ nodes: their scales are used, calibration is ignored"
        )
    if major >= 11:
        if strongly_typed is False:
            raise BackendError(
                "TensorRT 11 builds strongly typed networks only (weak typing was removed)"
            )
        if int8 and not has_qdq:
            raise BackendError(
                "TensorRT 11 has no implicit INT8 (BuilderFlag.INT8 and IInt8EntropyCalibrator2 "
                "were removed): quantize first with 'graphopt quantize IN -o OUT --calib DIR "
                "--target tensorrt' and build the Q/DQ model"
            )
        return BuildPlan(major, precision, True, convert_fp16=fp16, notes=tuple(notes))
    if int8 and not has_qdq and not calibration:
        raise BackendError(
            "--int8 on a model without Q/DQ nodes needs calibration data (--calib DIR) or a "
            "calibration cache (--cache FILE); or quantize first with 'graphopt quantize'"
        )
    if strongly_typed:
        if int8 and not has_qdq:
            raise BackendError(
                "a strongly typed network cannot use the INT8 calibrator: quantize the model "
                "with 'graphopt quantize' or drop --strongly-typed"
            )
        return BuildPlan(major, precision, True, convert_fp16=fp16, notes=tuple(notes))
    flags = tuple(f for f, on in (("FP16", fp16), ("INT8", quantized)) if on)
    calibrator = int8 and not has_qdq
    if calibrator:
        notes.append(
            "implicit INT8 with IInt8EntropyCalibrator2 is deprecated since TensorRT 10.1 and "
            "removed in 11; prefer a Q/DQ model from 'graphopt quantize'"
        )
    return BuildPlan(major, precision, False, flags, calibrator, notes=tuple(notes))


def _with_deprecated_flags_note(plan: BuildPlan, version: str) -> BuildPlan:
    """`plan` with a note where it sets BuilderFlag FP16/INT8 on TensorRT 10.12 or newer, whose
    bindings mark them '[DEPRECATED] Deprecated in TensorRT 10.12. Superseded by strong
    typing' (weak typing still works in 10.x; 11 removed it)."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:2]] + [0, 0]
    if not plan.flags or plan.major != 10 or parts[1] < 12:
        return plan
    note = (
        f"BuilderFlag {'/'.join(plan.flags)} are deprecated since TensorRT 10.12 (superseded by "
        "strong typing, the only typing of TensorRT 11): --strongly-typed builds without them"
    )
    return replace(plan, notes=(*plan.notes, note))


def has_qdq(model: onnx.ModelProto, version: int = 10) -> bool:
    """Whether TensorRT `version`'s parser imports a Q/DQ node of `model`: in If/Loop/Scan
    bodies and model-local functions too (`trt_check.imports_qdq`)."""
    from graphopt.backends.trt_check import imports_qdq

    return imports_qdq(model, version)


# ---------------------------------------------------------------------------------------------
# calibration (TensorRT 10 legacy implicit INT8)


def retag_calibration_cache(data: bytes, tag: str) -> bytes:
    """graphopt's calibration cache, re-headed with this TensorRT's `tag`.

    graphopt (`graphopt.quant.cache`) and TensorRT write the same text format
    (`TRT-<version>-<calibrator>`, then `tensor: <8 hex digits of the big-endian float32
    scale>`). TensorRT skips a cache whose header names another version or another calibrator
    than the one reading it, so the header becomes `tag` (this TensorRT, EntropyCalibration2)
    whatever calibrator it names: `graphopt quantize` heads a cache with its method's
    (MinMaxCalibration for minmax, the default; LegacyCalibration for percentile and mse) or
    with that of the cache its scales came from. Each scale is amax / 127 whichever calibrator
    chose amax, and TensorRT uses a cache's scales as they are: the calibrator's algorithm only
    matters when it calibrates. Every tensor line is kept as written (`calib_cache.retag`),
    TensorRT's own `name: 0` lines (tensors it found no scale for) too. The text is UTF-8, as
    graphopt writes it: tensor names are ONNX strings, not ASCII."""
    from graphopt.errors import QuantizeError
    from graphopt.quant import cache as calib_cache

    try:
        text = data.decode("utf-8")
        header, scales = calib_cache.loads(text, "calibration cache")
        retagged = calib_cache.retag(text, tag)  # TensorRT's own 'name: 0' lines kept
    except (QuantizeError, UnicodeDecodeError) as e:
        raise BackendError(f"cannot use the calibration cache: {e}") from e
    if header != tag:
        log.info("calibration cache %s: its %d scales are used as %s", header, len(scales), tag)
    return retagged.encode("utf-8")


def _same_scales(a: bytes, b: bytes) -> bool:
    """Whether two calibration caches hold the same scales (False if either does not parse)."""
    from graphopt.errors import QuantizeError
    from graphopt.quant import cache as calib_cache

    try:
        return calib_cache.loads(a.decode("utf-8"))[1] == calib_cache.loads(b.decode("utf-8"))[1]
    except (QuantizeError, UnicodeDecodeError):
        return False


@dataclass(frozen=True)
class CalibrationInput:
    """What TensorRT reads from a calibration buffer: `dtype` (None: no numpy type) at `shape`,
    the input's static shape or its calibration profile's opt shape (`profiled`)."""

    dtype: np.dtype | None
    shape: tuple[int, ...]
    profiled: bool = False


def calibration_inputs(
    trt: Any, network_inputs: Sequence[Any], profiles: Mapping[str, ShapeRange]
) -> dict[str, CalibrationInput]:
    """Per network input, the dtype (`ITensor.dtype`) and shape TensorRT calibrates it at: the
    profile's opt dims where `profiles` has it (setCalibrationProfile: "MIN and MAX values will
    be overwritten by kOPT"), else its static dims."""
    inputs = {}
    for tensor in network_inputs:
        try:
            dtype: np.dtype | None = np.dtype(trt.nptype(tensor.dtype))
        except TypeError:  # BF16, FP8, INT4: no numpy type
            dtype = None
        given = profiles.get(tensor.name)
        shape = given.opt if given is not None else tuple(int(d) for d in tensor.shape)
        inputs[tensor.name] = CalibrationInput(dtype, tuple(shape), given is not None)
    return inputs


def _calibration_array(
    value: Any, want: CalibrationInput | None, name: str, batch: int
) -> np.ndarray:
    """A calibration feed as TensorRT will read it: contiguous, in the input's dtype, checked
    against the calibration shape."""
    arr = np.asarray(value)
    if want is None:
        return np.ascontiguousarray(arr)
    if arr.shape != want.shape:
        where = " (--shapes opt)" if want.profiled else ""
        raise BackendError(
            f"calibration batch {batch}: input {name!r} has shape {_dims(arr.shape)}; TensorRT "
            f"calibrates it at {_dims(want.shape)}{where}"
        )
    if want.dtype is not None and arr.dtype != want.dtype:
        if not np.can_cast(arr.dtype, want.dtype, "same_kind"):
            raise BackendError(
                f"calibration batch {batch}: input {name!r} is {arr.dtype}; the network takes "
                f"{want.dtype}"
            )
        arr = arr.astype(want.dtype)
    return np.ascontiguousarray(arr)


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape) or "a scalar"


def make_entropy_calibrator(
    trt: Any,
    batches: Iterable[Mapping[str, np.ndarray]] | None,
    cache_path: str | Path | None,
    device: Any = None,
    inputs: Mapping[str, CalibrationInput] | None = None,
) -> Any:
    """An `IInt8EntropyCalibrator2` that feeds `batches` (graphopt calibration feeds) to
    TensorRT and reads/writes `cache_path` (graphopt's cache format). With no batches TensorRT
    must find every scale in the cache. `device` holds device memory (`CudaDevice` by default).
    `inputs` (from `calibration_inputs`): what TensorRT reads from each input's buffer; a feed
    is cast to that dtype (a `BackendError` for one that cannot be, or of another shape).

    TensorRT calls these methods through a pybind trampoline that catches every exception,
    prints it and answers "no more batches" / "no cache" (NVIDIA/TensorRT
    python/src/infer/pyInt8.cpp): nothing raised here reaches `build_serialized_network`'s
    caller. So the cache is read and checked now (a `BackendError` here), and a callback's
    error is kept in `.error` (calibration stops at once, nothing is written) for
    `build_engine` to raise after the build."""
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise BackendError(
            f"TensorRT {trt_version(trt)} has no IInt8EntropyCalibrator2 (removed in 11): "
            "build a Q/DQ model from 'graphopt quantize' instead"
        )
    tag = calibration_cache_tag(trt)
    path = Path(cache_path) if cache_path else None
    given = None  # what read_calibration_cache hands TensorRT
    if path is not None and path.is_file():
        log.info("reading calibration cache %s", path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise BackendError(
                f"cannot read the calibration cache {path}: {e.strerror or e}"
            ) from e
        given = retag_calibration_cache(data, tag)

    class EntropyCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)  # type: ignore[misc]
            self.batches: Iterator[Mapping[str, np.ndarray]] = iter(batches or ())
            self.cache_path = path
            self.given: bytes | None = given
            self.device = device
            self.pointers: dict[str, tuple[int, int]] = {}
            self.first = next(self.batches, None)
            self.count = 0
            self.error: Exception | None = None  # raised by build_engine after the build

        def get_batch_size(self) -> int:
            if self.first is None:
                return 1
            arr = next(iter(self.first.values()))
            return int(arr.shape[0]) if arr.ndim else 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.error is not None:
                return None
            try:
                return self._copy_batch(names)
            except Exception as e:  # TensorRT would print it and take it as the data's end
                self.error = e
                return None

        def _copy_batch(self, names: list[str]) -> list[int] | None:
            feed = self.first if self.count == 0 else next(self.batches, None)
            if feed is None:
                return None
            if self.device is None:
                from graphopt.backends.trt_runtime import CudaDevice

                self.device = CudaDevice()
            pointers = []
            for name in names:
                if name not in feed:
                    raise BackendError(f"calibration batch {self.count} has no input {name!r}")
                arr = _calibration_array(feed[name], (inputs or {}).get(name), name, self.count)
                ptr, size = self.pointers.get(name, (0, 0))
                if arr.nbytes > size:
                    ptr, size = self.device.malloc(arr.nbytes), arr.nbytes
                    self.pointers[name] = (ptr, size)
                self.device.to_device(ptr, arr)
                pointers.append(ptr)
            self.count += 1
            return pointers

        def read_calibration_cache(self) -> bytes | None:
            if self.given is None and self.cache_path is not None and self.cache_path.is_file():
                try:  # written since the calibrator was made
                    self.given = retag_calibration_cache(self.cache_path.read_bytes(), tag)
                except (BackendError, OSError) as e:
                    self.error = e
            return self.given

        def write_calibration_cache(self, cache: Any) -> None:
            if self.cache_path is None or self.error is not None:
                return
            if self.given is not None and _same_scales(bytes(cache), self.given):
                # the cache read, handed back: the file keeps its header (the calibrator
                # that chose the scales, e.g. graphopt quantize's MinMaxCalibration)
                return
            try:
                write_atomic(self.cache_path, bytes(cache))
            except OSError as e:
                self.error = BackendError(
                    f"cannot write the calibration cache {self.cache_path}: {e.strerror or e}"
                )
                return
            log.info("wrote calibration cache %s", self.cache_path)

    return EntropyCalibrator()


# ---------------------------------------------------------------------------------------------
# building


@dataclass
class EngineInfo:
    """What was built: written next to the engine as `<engine>.json`."""

    engine: str
    tensorrt_version: str
    precision: str
    strongly_typed: bool
    builder_flags: list[str]
    shapes: dict[str, dict[str, list[int]]]
    workspace_mib: int | None
    source_model: str
    source_sha256: str
    graphopt_version: str
    calibration: str | None = None  # "qdq", "calibrator", or None
    calibration_cache: str | None = None
    timing_cache: str | None = None
    engine_bytes: int = 0
    notes: list[str] = field(default_factory=list)


# IBuilderConfig.set_memory_pool_limit(pool, pool_size) binds pool_size as size_t (pyCore.cpp):
# a workspace of 2^44 MiB or more, or below 0, is no size_t of bytes.
MAX_WORKSPACE_MIB = 2**44


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename (the
    file's mode follows the umask, as for graphopt's model files)."""
    from graphopt.ir.model_io import write_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, path.parent, data)


def _source(model: Any) -> tuple[onnx.ModelProto, bytes, str]:
    """(ModelProto, serialized bytes for the parser, a name for the sidecar)."""
    from graphopt.ir import load_model

    proto = load_model(model)
    if proto.ByteSize() >= 2**31:
        raise BackendError(
            "the model is over 2 GiB, which graphopt's TensorRT builder cannot hand to the "
            "parser as one protobuf; build it with trtexec --onnx=FILE instead"
        )
    name = str(model) if isinstance(model, str | os.PathLike) else "<in-memory model>"
    return proto, proto.SerializeToString(), name


def build_engine(
    model: Any,
    output: str | Path,
    *,
    fp16: bool = False,
    int8: bool = False,
    calibration: Iterable[Mapping[str, np.ndarray]] | None = None,
    cache: str | Path | None = None,
    shapes: Mapping[str, ShapeRange] | Iterable[str] | str | None = None,
    workspace_mib: int | None = None,
    timing_cache: str | Path | None = None,
    strongly_typed: bool | None = None,
    check_device: bool = True,
) -> EngineInfo:
    """Build a TensorRT engine from `model` (path or ModelProto) and write it to `output`.

    `int8` with a Q/DQ model uses its scales (explicit quantization, both generations); on a
    model without Q/DQ (TensorRT 10 only) it calibrates with `calibration` (feed dicts) and/or
    the calibration `cache`. `shapes`: optimization profiles (`parse_shapes` syntax or its
    result), required for every dynamic input. `workspace_mib` caps TensorRT's workspace pool;
    `timing_cache` is read if it exists and written back after the build. Nothing is written
    unless the build succeeds; the engine and its `.json` sidecar are written atomically.
    """
    import graphopt

    if workspace_mib is not None and not 0 <= int(workspace_mib) < MAX_WORKSPACE_MIB:
        # set_memory_pool_limit takes a size_t of bytes: pybind raised a TypeError past it
        raise BackendError(
            f"workspace must be 0 to {MAX_WORKSPACE_MIB - 1} MiB (2^64 bytes), got {workspace_mib}"
        )
    trt = import_tensorrt()
    major = trt_major(trt)
    if check_device:
        from graphopt.backends.trt_runtime import require_cuda_device

        require_cuda_device()
    profiles = shapes if isinstance(shapes, Mapping) else parse_shapes(shapes)
    proto, data, source_name = _source(model)
    digest = hashlib.sha256(
        Path(source_name).read_bytes() if source_name != "<in-memory model>" else data
    ).hexdigest()
    quantized_model = has_qdq(proto, major)
    plan = plan_build(
        major,
        has_qdq=quantized_model,
        fp16=fp16,
        int8=int8,
        calibration=calibration is not None or cache is not None,
        strongly_typed=strongly_typed,
    )
    plan = _with_deprecated_flags_note(plan, trt_version(trt))
    for note in plan.notes:
        log.warning("%s", note)
    if plan.convert_fp16:
        data = fp16_model(proto).SerializeToString()

    logger = trt_logger(trt)
    try:
        builder = trt.Builder(logger)
    except TypeError as e:  # pybind11: "factory function returned nullptr"
        raise BackendError(
            f"TensorRT cannot create a builder ({e}): is the GPU usable and the driver new "
            "enough for this TensorRT? Check nvidia-smi; run with -vv for TensorRT's log"
        ) from e
    net_flags = 0
    if plan.strongly_typed and major < 11:  # 11: always strongly typed, the flag deprecated
        net_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(net_flags)
    try:
        parser = trt.OnnxParser(network, logger)
    except TypeError as e:  # pybind11: "factory function returned nullptr"
        raise BackendError(
            f"TensorRT cannot create its ONNX parser ({e}): do libnvonnxparser and libnvinfer "
            "come from the same TensorRT? Run with -vv for TensorRT's log"
        ) from e
    # graphopt's loader has already pulled external weights into the proto: parse bytes only.
    if not parser.parse(data):
        raise BackendError(_parser_failure(parser))

    config = builder.create_builder_config()
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))

    used_profiles: dict[str, ShapeRange] = {}
    profile = builder.create_optimization_profile()
    network_inputs = [network.get_input(i) for i in range(network.num_inputs)]
    known = {t.name for t in network_inputs}
    unknown = sorted(set(profiles) - known)
    if unknown:
        raise unknown_profiles_error(unknown, sorted(known), "network")
    for tensor in network_inputs:
        chosen = fill_profile(tensor.name, tuple(tensor.shape), profiles.get(tensor.name))
        if chosen is not None:
            profile.set_shape(tensor.name, chosen.min, chosen.opt, chosen.max)
            used_profiles[tensor.name] = chosen
    if used_profiles and config.add_optimization_profile(profile) < 0:
        raise BackendError(
            "TensorRT refused the optimization profile of --shapes "
            f"{', '.join(sorted(used_profiles))}; run with -vv for its log"
        )

    calibrator = None
    if plan.calibrator:
        calibrator = make_entropy_calibrator(
            trt,
            calibration,
            cache,
            inputs=calibration_inputs(trt, network_inputs, used_profiles),
        )
        config.int8_calibrator = calibrator
        if used_profiles:
            _set_calibration_profile(builder, config, used_profiles)

    if timing_cache is not None:  # the binding keeps the cache alive with the config
        _attach_timing_cache(config, Path(timing_cache))

    serialized = builder.build_serialized_network(network, config)
    if calibrator is not None and calibrator.error is not None:
        error = calibrator.error
        if isinstance(error, BackendError):
            raise error
        raise BackendError(f"calibration failed: {error}") from error
    if serialized is None:
        raise BackendError(
            "TensorRT failed to build the engine; run with -vv to see TensorRT's log"
        )
    engine_bytes = bytes(serialized)
    if timing_cache is not None:
        built = config.get_timing_cache()
        if built is None:  # not expected once set_timing_cache said yes
            log.warning("TensorRT has no timing cache to write to %s", timing_cache)
        else:
            write_atomic(timing_cache, bytes(built.serialize()))

    info = EngineInfo(
        engine=str(output),
        tensorrt_version=trt_version(trt),
        precision=plan.precision,
        strongly_typed=plan.strongly_typed,
        builder_flags=list(plan.flags),
        shapes={
            name: {"min": list(r.min), "opt": list(r.opt), "max": list(r.max)}
            for name, r in used_profiles.items()
        },
        workspace_mib=workspace_mib,
        source_model=source_name,
        source_sha256=digest,
        graphopt_version=graphopt.__version__,
        calibration="qdq" if quantized_model else ("calibrator" if plan.calibrator else None),
        calibration_cache=str(cache) if cache is not None else None,
        timing_cache=str(timing_cache) if timing_cache is not None else None,
        engine_bytes=len(engine_bytes),
        notes=list(plan.notes),
    )
    write_atomic(output, engine_bytes)
    write_atomic(sidecar_path(output), (json.dumps(asdict(info), indent=2) + "\n").encode())
    return info


def _set_calibration_profile(builder: Any, config: Any, profiles: Mapping[str, ShapeRange]) -> None:
    """A calibration profile of its own, min = opt = max = each input's opt dims, as trtexec
    builds one (samples/common/sampleEngines.cpp): setCalibrationProfile overwrites MIN and
    MAX by kOPT (NvInfer.h), so the engine's optimization profile is not handed to it."""
    calib = builder.create_optimization_profile()
    for name, r in profiles.items():
        calib.set_shape(name, r.opt, r.opt, r.opt)
    if not config.set_calibration_profile(calib):
        raise BackendError("TensorRT refused the calibration profile; run with -vv for its log")


def _attach_timing_cache(config: Any, path: Path) -> Any:
    """The timing cache read from `path` (a new one where there is no file), attached to
    `config`. createTimingCache answers None for bytes it cannot read (a `BackendError`: the
    file is left alone); setTimingCache answers False for a cache made on another GPU or
    TensorRT (NvInfer.h), which is then replaced by a new one, written to `path` after the
    build."""
    try:
        blob = path.read_bytes() if path.is_file() else b""
    except OSError as e:
        raise BackendError(f"--timing-cache {path}: cannot read it: {e.strerror or e}") from e
    cache = config.create_timing_cache(blob)
    if cache is None:
        raise BackendError(
            f"--timing-cache {path}: TensorRT cannot read it as a timing cache; give another "
            "file or delete it"
        )
    if config.set_timing_cache(cache, False):
        return cache
    if blob:
        log.warning(
            "timing cache %s was made on another GPU or TensorRT version: not used; a new one "
            "is written there after the build",
            path,
        )
        cache = config.create_timing_cache(b"")
        if cache is not None and config.set_timing_cache(cache, False):
            return cache
    raise BackendError(f"--timing-cache {path}: TensorRT refused a new timing cache")


def sidecar_path(engine: str | Path) -> Path:
    return Path(f"{engine}.json")


def _parser_failure(parser: Any) -> str:
    count = int(parser.num_errors)
    if count == 0:
        return "TensorRT's ONNX parser rejected the model without saying why"
    err = parser.get_error(0)
    where = ""
    name = getattr(err, "node_name", None)
    op = getattr(err, "node_operator", None)
    if callable(name):
        name = name()
    if callable(op):
        op = op()
    if name or op:
        where = f" at node {name!r} ({op})"
    desc = err.desc() if callable(getattr(err, "desc", None)) else str(err)
    more = (
        f" (and {count - 1} more; check with 'graphopt check --target tensorrt')"
        if count > 1
        else ""
    )
    return f"TensorRT's ONNX parser failed{where}: {desc}{more}"
