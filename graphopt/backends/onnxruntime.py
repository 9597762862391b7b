"""onnxruntime as a verification and benchmarking backend.

`session` builds an InferenceSession from a ModelProto, `example_feeds` makes inputs from the
model's declared input types and shapes (or loads them from a `.npz`), and `compare` runs two
models on the same feeds and reports the largest differences per output.
`fused_int8_conv_problem` says when the installed onnxruntime computes int8 Conv wrong.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError, EncodeError

from graphopt._text import escaped, model_strings_escaped, names_escaped, shown
from graphopt.analysis.inference_aborts import inference_abort
from graphopt.errors import BackendError, VerifyError, first_line
from graphopt.ir.model_io import IR_NEEDS_INPUTS_FOR_INITIALIZERS
from graphopt.ir.values import declared_dims

log = logging.getLogger("graphopt.backends.onnxruntime")

LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}

# The IR version of the tiny models graphopt builds to probe onnxruntime (kernels, layouts).
# onnx.helper.make_model stamps onnx's newest IR version, which an older onnxruntime next to a
# newer onnx refuses (onnx 1.23 writes IR 14; onnxruntime 1.30 reads up to 13), and the probe
# would then report a capability missing. Every onnxruntime since 1.10 reads IR 8 (opset ≤ 17).
PROBE_IR_VERSION = 8


# The probe of `fused_int8_conv_problem`: a 3-channel-in, 24-channel-out 3×3 Q/DQ Conv (uint8
# activations, int8 per-channel weights, an image stem's shape), its output quantized in steps
# of FUSED_CONV_PROBE_STEP.
FUSED_CONV_PROBE_STEP = 0.02
FUSED_CONV_PROBE_SHAPE = (1, 3, 20, 17)
FUSED_CONV_ISSUE = "microsoft/onnxruntime#26324"


@functools.cache
def fused_int8_conv_error_steps(weight_max: int = 127) -> float:
    """How many output quantization steps the installed onnxruntime's fused int8 Conv (the
    QLinearConv that ORT_ENABLE_EXTENDED and ORT_ENABLE_ALL make of a Q/DQ Conv) is off from
    the same Q/DQ Conv unfused (ORT_DISABLE_ALL), on a probe Conv; 0 where the probe cannot
    run (an onnxruntime that refuses the model or fails on it: the probe then says nothing of
    the kernel, and a warning on a guess would be noise). Measured on a Xeon with AVX-512 VNNI
    and AMX-INT8 (FUSED_CONV_ISSUE, first seen on 1.23.1): 1.23.2 141-191 steps (it varies from
    run to run), 1.24.1 187, 1.24.4 96-130, 1.25.0 and later 0; int8 activations alike, and
    the QLinearMatMul of a Q/DQ MatMul of a small inner dim (1.23.2: 147-185 steps at K = 3 or
    27, 1 at K = 64), the two kernels sharing one int8 GEMM; ORT_ENABLE_BASIC, which does not
    fuse, 0 in all. Once per process (two sessions of a 6-node model: ~40 ms). `weight_max`:
    the probe's int8 weights are drawn from [-weight_max, weight_max] (64: as quantize's
    `reduce_range` makes them; on a Xeon with AVX-512 BW and no VNNI, 1.32.0: 23 steps at 127,
    0 at 64)."""
    try:
        return _fused_int8_conv_probe(weight_max)
    except Exception as e:  # onnxruntime's own untyped errors, and anything else of the probe
        log.debug("the fused int8 Conv probe did not run (%s): taken as right", first_line(e))
        return 0.0


def _fused_int8_conv_probe(weight_limit: int = 127) -> float:
    """`fused_int8_conv_error_steps`, measured (any error its caller's), with the probe's int8
    weights drawn from [-weight_limit, weight_limit]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    cin, cout = FUSED_CONV_PROBE_SHAPE[1], 24
    inits = [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "xs"),
        numpy_helper.from_array(np.array(0, np.uint8), "xz"),
        numpy_helper.from_array(
            rng.integers(-weight_limit, weight_limit + 1, (cout, cin, 3, 3)).astype(np.int8), "w"
        ),
        numpy_helper.from_array(rng.uniform(1e-3, 5e-3, cout).astype(np.float32), "ws"),
        numpy_helper.from_array(np.zeros(cout, np.int8), "wz"),
        numpy_helper.from_array(np.array(FUSED_CONV_PROBE_STEP, np.float32), "ys"),
        numpy_helper.from_array(np.array(128, np.uint8), "yz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fused_int8_conv_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(FUSED_CONV_PROBE_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=PROBE_IR_VERSION
    )
    feeds = {"x": rng.uniform(0, 1, FUSED_CONV_PROBE_SHAPE).astype(np.float32)}
    fused = run(session(model, level="all"), feeds)["y"]
    unfused = run(session(model, level="disable"), feeds)["y"]
    steps = float(np.abs(fused - unfused).max()) / FUSED_CONV_PROBE_STEP
    return steps if np.isfinite(steps) else 0.0


def fused_int8_conv_problem(weight_max: int = 127) -> str | None:
    """What is wrong with the installed onnxruntime's fused int8 Conv, as the start of a
    warning (the caller says what it means for its run, and adds `fused_int8_conv_remedy`), or
    None where it computes what the unfused Q/DQ Conv computes, to one step
    (`fused_int8_conv_error_steps`), for int8 weights in [-weight_max, weight_max] (64:
    quantize's `reduce_range`, which is what keeps a CPU without VNNI from saturating)."""
    # (bare for the full range: what callers and tests put in its place takes no argument)
    steps = (
        fused_int8_conv_error_steps()
        if weight_max == 127
        else fused_int8_conv_error_steps(weight_max)
    )
    if steps <= 1.01:  # one step: the two round the accumulated sum differently
        return None
    import onnxruntime as ort

    cause = _cause_with(weight_max)
    weights = "" if weight_max == 127 else f" with int8 weights in [-{weight_max}, {weight_max}]"
    return (
        f"onnxruntime {ort.__version__} computes int8 Conv and MatMul wrong on this CPU: the "
        "QLinearConv (and QLinearMatMul) that its ORT_ENABLE_EXTENDED and ORT_ENABLE_ALL "
        f"optimizations make of Q/DQ came out up to {steps:.0f} steps off on a probe Conv"
        + weights
        + (f" ({_FUSED_CONV_CAUSES[cause]})" if cause else "")
    )


# Why the fused int8 kernels are off, by what the CPU has (`_fused_conv_cause`). Measured: on
# a Xeon with AVX-512 VNNI and AMX, onnxruntime 1.23.2-1.24.4 96-191 steps (FUSED_CONV_ISSUE),
# 1.25 and later 0; on a Xeon with AVX-512 BW and no VNNI, 1.32.0 23 steps with the probe's
# weights over the whole int8 range and 0 with 7-bit weights: without VNNI, MLAS's u8·s8
# kernels add two products in 16 bits (vpmaddubsw), which saturates (255·127·2 > 32767), what
# onnxruntime's own `quantize_static(reduce_range=True)` (weights in 7 bits) is there for.
_FUSED_CONV_CAUSES = {
    "vnni": f"its AVX-512 VNNI / AMX int8 kernels, {FUSED_CONV_ISSUE}",
    "saturation": (
        "this CPU has no VNNI: onnxruntime's u8·s8 kernels add pairs of products in 16 bits, "
        "which saturate where the int8 weights use their whole range"
    ),
}
_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (/proc/cpuinfo); empty where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(
        flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()
    )


def _fused_conv_cause() -> str:
    """Which of `_FUSED_CONV_CAUSES` explains a wrong fused int8 Conv here ("" if none is
    known: then only what was measured is said)."""
    import onnxruntime as ort

    flags = cpu_flags()
    if not flags:
        return ""
    version = tuple(int(part) for part in ort.__version__.split(".")[:2] if part.isdigit())
    if flags & _VNNI_FLAGS:
        return "vnni" if (1, 23) <= version < (1, 25) else ""
    return "saturation" if {"avx2", "avx512bw"} & flags else ""


def _cause_with(weight_max: int) -> str:
    """`_fused_conv_cause` of a wrong result with int8 weights in [-weight_max, weight_max]:
    not saturation at 64 and under (255·64·2 ≤ 32767), so then one not known."""
    cause = _fused_conv_cause()
    return "" if cause == "saturation" and weight_max <= 64 else cause


def fused_int8_conv_remedy(weight_max: int = 127) -> str:
    """What a user can do about `fused_int8_conv_problem(weight_max)`, for its cause: where
    the full-range weights saturate, graphopt's own `reduce_range` (`graphopt quantize
    --reduce-range`: int8 weights in [-64, 64], as onnxruntime's `quantize_static(...,
    reduce_range=True)` makes them), where the probe with such weights is right (the cause
    comes from the CPU's flags; the remedy is measured)."""
    basic = (
        "run the quantized model at graph_optimization_level ORT_ENABLE_BASIC (no QLinearConv "
        "fusion)"
    )
    cause = _cause_with(weight_max)
    if cause == "vnni":
        return f"upgrade onnxruntime to 1.25 or later, or {basic}"
    if cause == "saturation" and fused_int8_conv_error_steps(64) <= 1.01:
        return (
            "quantize the weights to 7 bits with --reduce-range (the API's reduce_range=True: "
            f"int8 weights in [-64, 64], as onnxruntime's reduce_range makes them), or {basic}"
        )
    return basic


def probe_failure(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> str | None:
    """Why onnxruntime's CPU build (optimizations off, fatal log lines only) does not load
    `model` or run it on `feeds` (its error's first line), None where it does: the probes of
    what the installed onnxruntime has. ImportError without onnxruntime."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    try:
        sess = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        sess.run(None, feeds)
    except Exception as e:  # onnxruntime raises its own untyped errors
        return first_line(e) or type(e).__name__
    return None


@functools.cache
def qdq_runs(opset: int) -> bool:
    """Whether the installed onnxruntime's CPU build runs QuantizeLinear and DequantizeLinear
    at default-domain `opset` (uint8 per tensor, int8 per channel; True without onnxruntime:
    nothing to judge by). onnxruntime 1.32 has no kernels for their opset-28 versions (its
    other ops run there). Probed once per process, at the least IR version of that opset."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["dw"], axis=0),
        helper.make_node("Add", ["d", "dw"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.5, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "z"),
        numpy_helper.from_array(np.array([[1], [-2]], np.int8), "w"),
        numpy_helper.from_array(np.array([0.25, 0.5], np.float32), "ws"),
        numpy_helper.from_array(np.zeros(2, np.int8), "wz"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1])
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        helper.make_graph(nodes, "probe", [x], [y], inits),
        opset_imports=opsets,
        ir_version=max(PROBE_IR_VERSION, helper.find_min_ir_version_for(opsets, True)),
    )
    try:
        failure = probe_failure(model, {"x": np.ones((2, 1), np.float32)})
    except ImportError:
        return True
    if failure is not None:
        log.debug("Q/DQ at opset %d do not run here: %s", opset, failure)
    return failure is None


MAX_THREADS_PER_CPU = 4  # more intra-op threads than this per core only oversubscribes


def session(
    model: onnx.ModelProto | str | Path,
    *,
    threads: int = 0,
    level: str = "all",
    optimized_path: str | None = None,
) -> Any:
    """An onnxruntime CPU InferenceSession for `model` at graph optimization `level`."""
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - onnxruntime is a hard dependency
        raise BackendError("onnxruntime is not installed: pip install onnxruntime") from e
    most = MAX_THREADS_PER_CPU * (os.cpu_count() or 1)
    if threads > most:  # onnxruntime starts them all: 100000 took 16 GB before any run
        raise BackendError(
            f"{threads} threads is more than {MAX_THREADS_PER_CPU} per CPU of this machine "
            f"({most}); give 0 for one per core"
        )
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    opts.log_severity_level = 4  # fatal only: its errors reach the caller as one BackendError
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
    # onnxruntime's loader aborts the process on a Slice of a negative dim or a short Split
    # (`inference_aborts`); a model by path is one graphopt loaded (`load` refuses those) or wrote
    aborting = inference_abort(model) if isinstance(model, onnx.ModelProto) else ""
    if aborting:
        raise BackendError(f"onnxruntime cannot load the model: {aborting}")
    try:
        source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    except (EncodeError, ValueError) as e:  # protobuf: over 2 GiB (a traceback from --verify)
        raise BackendError(
            "onnxruntime cannot load the model: it is over 2 GiB, which onnxruntime takes only "
            "from a file with external data, not in memory"
        ) from e
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        first = _load_error_line(e, model)
        raise BackendError(f"onnxruntime cannot load the model: {first}") from e


def _load_error_line(error: Exception, model: onnx.ModelProto | str | Path) -> str:
    """onnxruntime's load `error` by its first line, the model's names in it escaped first
    (`_text.model_strings_escaped`): a newline in a node's or tensor's name cut the message at
    the name ("... in node (a" for node 'a\\ndd'), for every command that loads a model here.
    A model given by path: the path escaped too, and the file read again for its names
    (without its external data) only where the message holds a character that is not
    printable; a file onnx cannot read: its names as they are."""
    text = str(error)
    if not isinstance(model, onnx.ModelProto):  # "Load model from <path> failed:..."
        text = text.replace(os.fspath(model), escaped(os.fspath(model)))
    if not text.isprintable():
        try:
            proto = (
                model
                if isinstance(model, onnx.ModelProto)
                else onnx.load(os.fspath(model), load_external_data=False)
            )
        except (OSError, ValueError, DecodeError):
            proto = None
        if proto is not None:
            text = model_strings_escaped(text, proto)
    return first_line(error, text)


_NP_TYPES: dict[int, type] = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT64: np.uint64,
    onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.UINT16: np.uint16,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.BOOL: np.bool_,
}


# the element types numpy has no dtype for, nor onnxruntime's python conversion of numpy arrays
# (ml_dtypes has some; onnx stores them as bits): float8, float6, float4 and the 4- and 2-bit
# integers; bfloat16 is fed as its bits (`bfloat16_feed`)
_NUMPY_LACKS = frozenset(
    value
    for name, value in onnx.TensorProto.DataType.items()
    if name.startswith(("FLOAT8", "FLOAT6", "FLOAT4", "INT4", "UINT4", "INT2", "UINT2"))
)

# the element types numpy holds no array of: those above and bfloat16 (ml_dtypes has arrays of
# them), of which onnxruntime's Python API takes no numpy feed and gives no numpy output (its
# outputs are decoded from their bits: `BITS_OUTPUTS`; calibration feeds none of them:
# `quant.data.refuse_unfeedable_inputs`)
NO_NUMPY_ARRAY = _NUMPY_LACKS | {onnx.TensorProto.BFLOAT16}

# onnxruntime's names of the output types its session's `run` gives no numpy array of ("No
# corresponding Numpy type for Tensor Type. Int4x2", said by --verify as the inputs' fault) or
# gives as raw bytes (float8e4m3fn as uint8, compared bit pattern by bit pattern): `run` copies
# their bits out and decodes them to ml_dtypes arrays (`_decoded_array`), by onnx element type
BITS_OUTPUTS = {
    f"tensor({name.lower()})": value
    for name, value in onnx.TensorProto.DataType.items()
    if value in NO_NUMPY_ARRAY
}


def unfed_weights(model: onnx.ModelProto) -> set[str]:
    """The initializers `model` lists as graph inputs that onnxruntime takes no feed for: every
    one below IR 4, where onnxruntime reads them as constants ("Invalid input name: W"; IR < 4
    lists every weight as an input), none from IR 4 (overridable defaults; IR 0 is unset, read
    as the current version)."""
    if not 0 < model.ir_version < IR_NEEDS_INPUTS_FOR_INITIALIZERS:
        return set()
    inputs = {vi.name for vi in model.graph.input}
    return {t.name for t in model.graph.initializer if t.name in inputs}


def bfloat16_feed(array: np.ndarray, what: str) -> np.ndarray:
    """`array` as a feed of a bfloat16 input (an ml_dtypes.bfloat16 array, which `ort_feeds`
    hands onnxruntime as its bits): float32 values rounded to the nearest bfloat16 (ties to
    even, as ml_dtypes and onnx.numpy_helper round), or bit patterns as they are: uint16, or
    2-byte void, which is how np.save writes an ml_dtypes.bfloat16 array (numpy has no
    bfloat16; onnx stores it as uint16 bits). Another dtype, or no ml_dtypes (onnx's own
    dependency since 1.17), is a one-line `VerifyError` starting with `what`."""
    try:
        import ml_dtypes
    except ImportError as e:
        raise VerifyError(
            f"{what} is a bfloat16 input, which numpy cannot hold without the ml_dtypes "
            "package: pip install ml_dtypes"
        ) from e
    bfloat16 = np.dtype(ml_dtypes.bfloat16)
    if array.dtype == bfloat16:
        return array
    if array.dtype == np.float32:
        return array.astype(bfloat16)
    void = array.dtype.kind == "V" and array.dtype.itemsize == 2 and array.dtype.fields is None
    if array.dtype == np.uint16 or void:  # (a structured dtype holds fields, not one value)
        return _c_order(array).view(bfloat16)
    raise VerifyError(
        f"{what} is {array.dtype}, but the model's input is bfloat16: give float32 values "
        "(rounded to bfloat16, ties to even) or uint16 bit patterns"
    )


def ort_feeds(feeds: dict[str, np.ndarray], *, all_values: bool = False) -> dict[str, Any]:
    """`feeds` as onnxruntime's `run` takes them: a bfloat16 array (`bfloat16_feed`; numpy,
    and onnxruntime's conversion of numpy arrays, have no bfloat16) as an OrtValue of its bits
    (which holds the array), the others as they are, or, `all_values`, as OrtValues too (what
    `run_with_ort_values` takes). A string feed cannot be an OrtValue (onnxruntime's Python
    API makes none of strings): with `all_values` (a model with a bfloat16, float8 or int4
    output: `BITS_OUTPUTS`) it is a one-line `BackendError` naming the input (bench said a
    RuntimeError traceback)."""
    if not all_values and not any(map(_is_bfloat16, feeds.values())):
        return feeds
    import onnxruntime as ort

    strings = [name for name, a in feeds.items() if all_values and a.dtype.kind in "OSU"]
    if strings:
        are = "is a string tensor" if len(strings) == 1 else "are string tensors"
        raise BackendError(
            f"input {', '.join(map(shown, strings))} {are}, which onnxruntime's Python API "
            "cannot pass as an OrtValue, the only way it gives a bfloat16 output (or a "
            "float8 or int4 one: types numpy lacks) back: graphopt cannot run this model with "
            "such output(s); cast them to float32 in the model, or leave them out of its outputs"
        )

    return {
        name: (
            ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
                _c_order(a).view(np.uint16), onnx.TensorProto.BFLOAT16
            )
            if _is_bfloat16(a)
            else ort.OrtValue.ortvalue_from_numpy(_c_order(a))
            if all_values
            else a
        )
        for name, a in feeds.items()
    }


def _is_bfloat16(array: np.ndarray) -> bool:
    """Whether `array` is an ml_dtypes.bfloat16 array. Its kind first: numpy's dtype.name is
    made in Python each time (2 us), which every `run` of an ordinary model paid per feed."""
    return array.dtype.kind == "V" and array.dtype.name == "bfloat16"


def _c_order(array: np.ndarray) -> np.ndarray:
    """`array` in C order, copied only where it is not (np.ascontiguousarray made a scalar
    feed 1-D, which onnxruntime refuses for a scalar input)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def input_specs(model: onnx.ModelProto) -> list[tuple[str, int, list[int | str]]]:
    """(name, elem_type, dims) of the model's real inputs (initializer-backed inputs excluded)."""
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims: list[int | str] = list(declared_dims(vi, unknown="?") or ())
        specs.append((vi.name, vi.type.tensor_type.elem_type, dims))
    return specs


def example_feeds(
    model: onnx.ModelProto,
    *,
    seed: int = 0,
    dims: dict[str, int] | None = None,
    default_dim: int = 1,
    npz: str | Path | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    npz_name: str | None = None,
    real_inputs: str | None = None,
    unfed_weights_note: str = "",
) -> dict[str, np.ndarray]:
    """Inputs for a numerical comparison: from `npz` if given, else seeded values of the declared
    types and shapes (an input named in `shapes` has that shape; a fixed dim, 0 included, its
    size; symbolic dims from `dims`, else `default_dim`; a symbolic spatial dim of a 4-D image
    input gets 224 so convolutions have room). A name in `shapes` that is no model input is a
    `VerifyError`, and so, from `npz`, are a missing input, an array that is no graph input
    (overridable weights are, from IR 4), a weight of a model below IR 4 (`unfed_weights`; the
    error adds `unfed_weights_note`, a command's word on its other model) and an array of
    another dtype than its input. A bfloat16 input is fed from float32 values (rounded to the
    nearest bfloat16, ties to even) or from its uint16 bit patterns (`bfloat16_feed`); an input
    of another type numpy lacks (float8, int4) is refused by name. Those errors start with
    `npz_name` (a command's `--inputs 'PATH'`), else the path on one line (`shown`). An input
    that is no float, integer or bool tensor (a string tensor, a sequence, an optional) is a
    `VerifyError` naming its type, and `real_inputs` (a command's flag) where given; so, for
    seeded values, is a numeric type numpy has no dtype for (bfloat16, float8)."""
    if npz is not None:
        from graphopt.arrays import load_arrays
        from graphopt.ir.model_io import special_file_kind

        label = shown(npz) if npz_name is None else npz_name

        if os.path.exists(npz) and not os.path.isfile(npz):  # a FIFO: np.load waited for ever
            kind = (
                "a folder"
                if os.path.isdir(npz)
                else f"not a regular file ({special_file_kind(npz) or 'a special file'})"
            )
            raise VerifyError(f"{label}: cannot read input feeds: it is {kind}")
        try:
            feeds = load_arrays(npz)
        except ValueError as e:
            raise VerifyError(f"{label}: cannot read input feeds: {e}") from e
        if not isinstance(feeds, dict):
            raise VerifyError(f"{label}: not an .npz archive of named arrays (np.savez writes one)")
        missing = [name for name, _, _ in input_specs(model) if name not in feeds]
        if missing:  # (np.savez(f, x) keys it arr_0: say what the file holds)
            raise VerifyError(
                f"{label}: no array for model input(s) {', '.join(missing)}; the file holds "
                f"{', '.join(map(shown, feeds)) or 'no arrays'} (key each array by its input "
                "name)"
            )
        declared = {vi.name: vi for vi in model.graph.input}  # overridable weights too
        extra = [name for name in feeds if name not in declared]
        if extra:
            inputs = f"inputs: {', '.join(declared)}" if declared else "it has no inputs"
            # (a key the file gives is shown on one line: 'y\nz' made the error two)
            given = ", ".join(map(shown, extra))
            raise VerifyError(f"{label}: {given} is no input of the model ({inputs})")
        weights = unfed_weights(model)
        refused = [name for name in feeds if name in weights]
        if refused:  # onnxruntime: "Invalid input name: W", after the whole optimization
            listed = ", ".join(map(shown, refused))
            are = "is a weight" if len(refused) == 1 else "are weights"
            raise VerifyError(
                f"{label}: {listed} {are} of this IR {model.ir_version} model (an initializer it "
                "also lists as an input, as IR < 4 lists every weight): onnxruntime feeds no "
                f"weight of a model below IR 4{unfed_weights_note}; leave {listed} out of the "
                "file (the model's own values are used)"
            )
        fed = {}
        for name, array in feeds.items():  # onnxruntime's message names no input
            elem = declared[name].type.tensor_type.elem_type
            if elem == onnx.TensorProto.BFLOAT16:
                fed[name] = bfloat16_feed(array, f"{label}: {shown(name)}")
                continue
            if elem in _NUMPY_LACKS:  # onnxruntime: "Unexpected input data type", after the
                # whole optimization, and --verify's "give inputs it accepts" (none can be)
                raise VerifyError(
                    f"{label}: the model's input {shown(name)} is "
                    f"{onnx.TensorProto.DataType.Name(elem)}, which numpy has no dtype for: "
                    "graphopt feeds no such input from an .npz (of those types, bfloat16 only, "
                    "from float32 values or uint16 bits)"
                )
            want = _NP_TYPES.get(elem)
            if want is not None and array.dtype != want:
                raise VerifyError(
                    f"{label}: {name} is {array.dtype}, but the model's input {name} is "
                    f"{np.dtype(want)}"
                )
            fed[name] = array
        return fed
    rng = np.random.default_rng(seed)
    feeds = {}
    specs = input_specs(model)
    kinds = {vi.name: vi.type.WhichOneof("value") or "no type" for vi in model.graph.input}
    unknown = sorted(set(shapes or ()) - {name for name, _, _ in specs})
    if unknown:
        raise VerifyError(f"--shapes names {', '.join(unknown)}, which are not model inputs")
    for name, elem, shape in specs:
        concrete: list[int] = list((shapes or {}).get(name, ()))
        for axis, d in enumerate(shape if not concrete else ()):
            if isinstance(d, int):  # 0 too: a declared 0-size dim is fed empty, not as 1
                concrete.append(d)
            elif dims and isinstance(d, str) and d in dims:
                concrete.append(dims[d])
            elif len(shape) == 4 and axis >= 2:
                concrete.append(224)
            else:
                concrete.append(default_dim)
        dtype = _NP_TYPES.get(elem)
        if dtype is None:  # (an unknown number too: DataType.Name raised a bare ValueError)
            named = next((k for k, v in onnx.TensorProto.DataType.items() if v == elem), elem)
            kind = kinds.get(name, "tensor_type")
            # a sequence, optional or map input has no elem_type: it was "element type UNDEFINED"
            if kind == "tensor_type":
                what = f"has element type {named}"
            elif kind in _TYPE_KINDS:
                what = f"is {_TYPE_KINDS[kind]}, not a tensor"
            else:
                what = "has no type"
            if kind == "tensor_type" and (elem == onnx.TensorProto.UNDEFINED or elem == named):
                # no feed fits: it was "...; give real ones with --inputs NPZ"
                what = (
                    "declares no element type"
                    if elem == onnx.TensorProto.UNDEFINED
                    else f"has element type {elem}, which ONNX does not define"
                )
                raise VerifyError(
                    f"input {name!r} {what}: the model's input type is invalid (onnx.checker's "
                    "full check refuses it), and no values, seeded or given, can be fed to it; "
                    "declare its element type"
                )
            # an .npz holds arrays: a tensor's, or an optional tensor's, not a sequence or map
            fits = kind in ("tensor_type", "optional_type")
            hint = f"; give real ones with {real_inputs}" if real_inputs and fits else ""
            if kind == "tensor_type" and elem in _NUMPY_LACKS and real_inputs:
                # (an .npz entry for it is refused too: numpy has no dtype for it)
                hint = f", nor taken from {real_inputs} for {named}, which numpy has no dtype for"
            raise VerifyError(
                f"input {name!r} {what}: seeded values are made only for float16, float, "
                f"double, integer and bool tensors{hint}"
            )
        try:
            feeds[name] = _seeded(rng, dtype, concrete)
        except (MemoryError, ValueError) as e:  # a shape too large (or invalid) to allocate
            dims_text = "x".join(map(str, concrete)) or "scalar"
            raise VerifyError(f"cannot make a {dims_text} feed for input {name!r}: {e}") from e
    return feeds


_TYPE_KINDS = {
    "sequence_type": "a sequence",
    "optional_type": "an optional",
    "map_type": "a map",
    "sparse_tensor_type": "a sparse tensor",
}


def _seeded(rng: np.random.Generator, dtype: Any, shape: list[int]) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype is np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 4, shape).astype(dtype)


def describe_feeds(feeds: dict[str, np.ndarray]) -> str:
    """'x: float32 1×3×224×224, ...' for messages (one line: a name's newline escaped)."""
    return ", ".join(
        f"{escaped(k)}: {v.dtype} {'×'.join(map(str, v.shape)) or 'scalar'}"
        for k, v in feeds.items()
    )


ROUNDING_ULPS = 8  # a rewrite's rounding, in units of the output type's precision


@dataclass
class Difference:
    output: str
    max_abs: float
    max_rel: float  # max |a-b| / max(|a|) over the output: robust to near-zero elements
    scale: float = 0.0  # max |a| over the reference output's finite values
    exact: bool = False  # integer, bool or string values: any difference is one
    # the least relative bound the output's float type can meet: ROUNDING_ULPS × its machine
    # epsilon (float16: 7.8e-3, float32: 9.5e-7); 0 for exact values
    resolution: float = 0.0
    empty: bool = False  # the output holds no values (a 0-size dim): nothing was compared

    def excess(self, rtol: float, atol: float) -> float:
        """How far max |a-b| is above atol + rtol · max |a| (> 0: too far). An output that is
        ~0 everywhere (a probability map of random noise) is judged by `atol`, not by a
        relative error of 1; integer outputs (indices, class ids) must be equal."""
        return self.max_abs - (0.0 if self.exact else atol + rtol * self.scale)

    def exceeds(self, rtol: float, atol: float) -> bool:
        return self.excess(rtol, atol) > 0

    def default_rtol(self, rtol: float) -> float:
        """A default relative bound `rtol`, raised to what the output's type resolves: a
        float16 output of a Conv whose BatchNormalization was folded into its float16 weights
        differs by a rounding of ~5e-4 × its largest value, which a float32 default refuses."""
        return max(rtol, self.resolution)


def run_error_text(
    error: BaseException,
    limit: int = 400,
    model: onnx.ModelProto | None = None,
    names: Iterable[str] = (),
) -> str:
    """onnxruntime's run error as one line: its lines joined, since a wrong feed shape says
    "Got invalid dimensions for input: x for the following indices" and names the dims (got
    and expected) only on the lines after it; cut at `limit` characters. The `model`'s names,
    where it is given (`model_strings_escaped`), and `names` (the feeds': one the model lacks
    is named too) escaped first: joined, a name's newline read as a space ('re shape' for
    're\\nshape')."""
    text = str(error) if model is None else model_strings_escaped(str(error), model)
    text = " ".join(names_escaped(text, names).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run(
    model_or_session: Any,
    feeds: dict[str, np.ndarray],
    *,
    level: str = "all",
    model: onnx.ModelProto | None = None,
) -> dict[str, np.ndarray]:
    """The model's outputs on `feeds`, by name; a model is run in a session at graph
    optimization `level` (`LEVELS`). An error names the model's names escaped: those of the
    model given, or of `model` (the session's, where one is given)."""
    sess = (
        model_or_session
        if hasattr(model_or_session, "run")
        else session(model_or_session, level=level)
    )
    outputs = sess.get_outputs()
    names = [o.name for o in outputs]
    # (the session's run has no numpy type for a bfloat16, int4 or float8 output: "No
    # corresponding Numpy type for Tensor Type. bfloat16", which --verify said as the inputs'
    # fault; float8e4m3fn came back as its bytes, uint8)
    bits = {o.name: BITS_OUTPUTS[o.type] for o in outputs if o.type in BITS_OUTPUTS}
    try:
        if bits:
            ort_values = sess.run_with_ort_values(names, ort_feeds(feeds, all_values=True))
            values = [
                _decoded_array(v, bits[name]) if name in bits else v.numpy()
                for name, v in zip(names, ort_values, strict=True)
            ]
        else:
            values = sess.run(names, ort_feeds(feeds))
    except Exception as e:  # onnxruntime raises its own untyped errors
        if isinstance(model_or_session, onnx.ModelProto):
            model = model_or_session
        text = run_error_text(e, model=model, names=feeds)
        raise BackendError(f"onnxruntime failed to run the model: {text}") from e
    return dict(zip(names, values, strict=True))


def _decoded_array(value: Any, elem: int) -> np.ndarray:
    """A tensor OrtValue on the CPU of onnx element type `elem` (bfloat16, a float8, int4, ...:
    `BITS_OUTPUTS`) as the ml_dtypes array onnx reads such a tensor as, its bits copied out
    (OrtValue.numpy has no numpy type for them either) and unpacked as onnx stores them (two
    int4 to a byte, low nibble first)."""
    import ctypes

    from onnx import numpy_helper

    size = value.tensor_size_in_bytes()
    data = ctypes.string_at(value.data_ptr(), size) if size else b""
    tensor = onnx.TensorProto(data_type=elem, dims=value.shape(), raw_data=data)
    array = numpy_helper.to_array(tensor)
    ml_name = _ML_DTYPES_BEFORE_ONNX_1_18.get(elem)
    if ml_name is not None and array.dtype.name != ml_name:
        # onnx < 1.18 (pyproject takes 1.16) decodes them to float32 (int4 to int8), which
        # `compare` judged as float32, to float32's epsilon: as the ml_dtypes type, every
        # value exact, they are judged to their own type's step
        try:
            import ml_dtypes
        except ImportError:  # (the values as onnx gives them)
            return array
        return array.astype(getattr(ml_dtypes, ml_name))
    return array


# the ml_dtypes types of the element types numpy lacks that onnx before 1.18 knew, and
# decoded (numpy_helper.to_array) to float32 or int8/uint8 values; later ones it decodes to
# ml_dtypes arrays itself
_ML_DTYPES_BEFORE_ONNX_1_18: dict[int, str] = {
    onnx.TensorProto.BFLOAT16: "bfloat16",
    onnx.TensorProto.FLOAT8E4M3FN: "float8_e4m3fn",
    onnx.TensorProto.FLOAT8E4M3FNUZ: "float8_e4m3fnuz",
    onnx.TensorProto.FLOAT8E5M2: "float8_e5m2",
    onnx.TensorProto.FLOAT8E5M2FNUZ: "float8_e5m2fnuz",
    onnx.TensorProto.INT4: "int4",
    onnx.TensorProto.UINT4: "uint4",
}


def compare(
    reference: Any, candidate: Any, feeds: dict[str, np.ndarray], *, level: str = "all"
) -> list[Difference]:
    """Run both models on `feeds`, each model (not a session) in a session at graph
    optimization `level` (`LEVELS`: the ort-* pipelines' models are meant to run at
    "disable"); per output of the reference, the largest differences. A model that fails to
    run is a `VerifyError` that says which one, and on what inputs; so is a reference without
    outputs, an output whose shape or element type changed, and the reference's outputs in
    another order or with a new one among them (new outputs after them, as `expose-tensors`
    appends, are not compared)."""
    original = reference if isinstance(reference, onnx.ModelProto) else None  # (its names)
    try:
        reference = reference if hasattr(reference, "run") else session(reference, level=level)
    except BackendError as e:
        raise VerifyError(f"the original model does not load in onnxruntime: {e}") from e
    if not reference.get_outputs():  # onnxruntime: "At least one output should be requested"
        raise VerifyError("the original model has no graph outputs: there is nothing to compare")
    try:
        ref = run(reference, feeds, model=original)
    except BackendError as e:
        raise VerifyError(
            f"the original model does not run on the comparison inputs ({describe_feeds(feeds)}):"
            f" {e}; give inputs it accepts (command line: --shapes NAME:DIMS or --inputs NPZ)"
        ) from e
    try:
        got = run(candidate, feeds, level=level)
    except BackendError as e:
        raise VerifyError(
            f"the optimized model fails on inputs the original runs ({describe_feeds(feeds)}): {e}"
        ) from e
    if all(name in got for name in ref) and list(got)[: len(ref)] != list(ref):
        raise VerifyError(  # a reader taking outputs by position would read another one
            f"the optimized model's outputs are in another order: {', '.join(got)} (the "
            f"original: {', '.join(ref)})"
        )
    added = list(got)[len(ref) :]
    if added:  # appended after the original's, as `expose-tensors` does: nothing to compare
        log.info(
            "output(s) %s of the optimized model are new (after the original's): not compared",
            ", ".join(map(repr, added)),
        )
    diffs = []
    for name, a in ref.items():
        if name not in got:
            raise VerifyError(f"output {name!r} is missing from the optimized model")
        b = got[name]
        if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
            # a sequence or map output (ZipMap's list of dicts): compared leaf by leaf
            a, b = _leaves_of(name, a, b)
        if a.shape != b.shape:
            raise VerifyError(f"output {name!r} changed shape: {a.shape} -> {b.shape}")
        if a.dtype != b.dtype:  # float32 -> float64 values can all be equal
            raise VerifyError(f"output {name!r} changed element type: {a.dtype} -> {b.dtype}")
        if a.size == 0:
            diffs.append(Difference(name, 0.0, 0.0, empty=True))
            continue
        least = None
        if a.dtype.type.__module__ == "ml_dtypes":  # (no numpy number, and no numpy finfo)
            a, b, least = _ml_dtypes_compared(a, b)
        if not np.issubdtype(a.dtype, np.number):
            differs = float(np.any(a != b))
            diffs.append(Difference(name, differs, differs, exact=True))
            continue
        worst, scale = max_difference(a, b)
        exact = not np.issubdtype(a.dtype, np.inexact)
        resolution = 0.0 if exact else ROUNDING_ULPS * float(np.finfo(a.dtype).eps)
        resolution = resolution if least is None else least
        diffs.append(Difference(name, worst, worst / (scale or 1.0), scale, exact, resolution))
    return diffs


def _ml_dtypes_compared(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Two arrays of one ml_dtypes type (bfloat16, a float8 or float4, int4, int2: what `run`
    decodes such outputs to) in the numpy type they are compared in, every value exact: floats
    as float32, integers as int8 or uint8; and the output's `Difference.resolution`: bfloat16's
    ROUNDING_ULPS × its machine epsilon, as float16's; a float8's or float4's one step (its
    epsilon: ROUNDING_ULPS of them is its whole value): onnxruntime computes in neither (Cast and
    QuantizeLinear make them), so a rewrite's rounding before them moves a value to the next
    one at most; 0 for integers, which must be equal. float8 came back as its bytes and was
    compared bit pattern by bit pattern: any rounding was "integer values must be equal"."""
    import ml_dtypes

    if a.dtype.name.startswith(("int", "uint")):
        wide = np.int8 if ml_dtypes.iinfo(a.dtype).min < 0 else np.uint8
        return a.astype(wide), b.astype(wide), 0.0
    eps = float(ml_dtypes.finfo(a.dtype).eps)
    resolution = ROUNDING_ULPS * eps if a.dtype.name == "bfloat16" else eps
    return a.astype(np.float32), b.astype(np.float32), resolution


def max_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """max |a − b| and max |a| over a's finite values, for numeric arrays of one shape, not
    empty. Equal values (NaN in both too) differ by 0; a NaN on one side only differs by inf;
    integers that differ by at least 1 (in float64, 2**53 + 1 and 2**53 are equal)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    integers = not (np.issubdtype(a.dtype, np.inexact) or np.issubdtype(b.dtype, np.inexact))
    # integers compared as they are, not as float64
    same = (a == b) if integers else (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    delta = np.nan_to_num(np.where(same, 0.0, np.abs(a64 - b64)), nan=np.inf, posinf=np.inf)
    if integers:
        delta = np.where(same, 0.0, np.maximum(delta, 1.0))
    finite = np.abs(a64[np.isfinite(a64)])
    return float(delta.max()), float(finite.max()) if finite.size else 0.0


def _leaves_of(name: str, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """The leaves of two outputs that are sequences or maps (nested lists, tuples, dicts of
    numbers or arrays), flattened in the same order; a `VerifyError` when their structure
    (lengths, keys, leaf shapes) differs."""

    def flatten(x: Any, path: str, into: list[tuple[str, np.ndarray]]) -> None:
        if isinstance(x, dict):
            for key in sorted(x, key=repr):
                flatten(x[key], f"{path}[{key!r}]", into)
        elif isinstance(x, list | tuple):
            for i, item in enumerate(x):
                flatten(item, f"{path}[{i}]", into)
        else:
            into.append((f"{path}{list(np.shape(x))}", np.asarray(x).ravel()))

    left: list[tuple[str, np.ndarray]] = []
    right: list[tuple[str, np.ndarray]] = []
    flatten(a, "", left)
    flatten(b, "", right)
    if [p for p, _ in left] != [p for p, _ in right]:
        raise VerifyError(f"output {name!r} changed structure (a sequence or map output)")
    if not left:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([v for _, v in left]), np.concatenate([v for _, v in right])
