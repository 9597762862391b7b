"""`graphopt bench IN --backend onnxruntime|tensorrt [--threads N] [--runs N] [--warmup N]
[--level L] [--batch N]`.

Times inference: latency percentiles (p50/p90/p99 by nearest rank, mean) and throughput.
`onnxruntime` runs an .onnx model on the CPU provider, at graph optimization `--level`
(default all); `tensorrt` runs a serialized engine (`graphopt build`) on the GPU, timing
`execute_async_v3` + stream sync with the inputs already on the device. Inputs come from
`--inputs NPZ`, else they are synthetic (`synthetic_feed`; the result says so, as values can
change a model's time, e.g. the boxes an NMS keeps): floats standard normal, integers 0..3,
booleans False/True, in the `--shapes` given for dynamic inputs (onnxruntime, without them: a
dynamic dim is 1, or 224 for the last two dims of a 4-D input, a dim name shared by several
inputs one size in all; an engine needs them). The result names the input shapes it timed. Throughput counts `--batch` samples per run, else the
batch `batch_size` reads from the inputs. A progress bar on stderr counts the runs (warmup
included), as quantize's counts its batches (`--no-progress`: none); stdout holds
only the result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeGuard

import numpy as np
import onnx

from graphopt._text import counted
from graphopt.commands._common import (
    add_shapes_argument,
    read_npz,
    require_utf8_io_names,
    shown,
)

# what TensorRT engine files are called (graphopt build's -o, trtexec's --saveEngine)
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


@dataclass
class BenchResult:
    backend: str
    model: str
    runs: int
    batch: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    throughput: float  # samples per second at the mean latency
    shapes: dict[str, list[int]] = field(default_factory=dict)  # the timed inputs' shapes
    level: str = ""  # onnxruntime's graph optimization level ("": the backend has none)
    # the inputs were made up (`synthetic_feed`), not --inputs NPZ (a model without any: False)
    synthetic: bool = False

    def line(self) -> str:
        # (one line: an input's name is shown as the model's path is, a newline in it quoted)
        timed = ", ".join(
            f"{shown(k)} {'x'.join(map(str, v)) or 'scalar'}" for k, v in self.shapes.items()
        )
        at = f" at level {self.level}" if self.level not in ("", "all") else ""
        return (
            f"{self.backend}{at}: {shown(self.model)}: {counted(self.runs, 'run')}, "
            f"p50 {self.p50_ms:.2f} ms, "
            f"p90 {self.p90_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, mean {self.mean_ms:.2f} ms, "
            f"min {self.min_ms:.2f} ms, {self.throughput:.1f} samples/s (batch {self.batch})"
            + (f", {'synthetic ' if self.synthetic else ''}inputs {timed}" if timed else "")
        )


def summarize(
    backend: str,
    model: str,
    seconds: Sequence[float],
    batch: int,
    feeds: dict[str, np.ndarray] | None = None,
) -> BenchResult:
    """Percentiles (nearest rank: the pN is the least run time that at least N% of the runs
    took at most, a time some run took) and throughput from per-run seconds; `feeds`: the
    timed inputs, whose shapes the result names. numpy's default (linear interpolation) put
    the p99 of 50 runs between the two slowest, a time that 2% of the runs exceeded, and the
    p99 of 5 runs 4% short of the slowest of them (20% of the runs)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    mean = float(ms.mean())
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99], method="inverted_cdf"))
    return BenchResult(
        backend,
        model,
        len(ms),
        batch,
        mean,
        p50,
        p90,
        p99,
        float(ms.min()),
        batch * 1000.0 / mean if mean > 0 else 0.0,
        {name: [int(d) for d in np.shape(v)] for name, v in (feeds or {}).items()},
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="time inference with onnxruntime (CPU) or a TensorRT engine (GPU)",
        description="Latency percentiles and throughput of a model: an .onnx file with "
        "onnxruntime, or an engine from 'graphopt build' with TensorRT.",
    )
    p.add_argument("input", help=".onnx model (onnxruntime) or engine file (tensorrt)")
    p.add_argument(
        "--backend",
        choices=("onnxruntime", "tensorrt"),
        default="onnxruntime",
        help="onnxruntime: an .onnx model on the CPU (default); tensorrt: an engine file on "
        "the GPU",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="onnxruntime intra-op threads (default 0: onnxruntime's default, one per physical "
        "core, not per logical CPU)",
    )
    p.add_argument(
        "--level",
        choices=("disable", "basic", "extended", "all"),
        default=None,
        help="onnxruntime's graph optimization level (default all, as its sessions default): "
        "disable times the model as it is, as the ort-* pipelines' models are meant to run",
    )
    p.add_argument("--runs", type=int, default=50, metavar="N", help="timed runs (default 50)")
    p.add_argument(
        "--warmup", type=int, default=5, metavar="N", help="untimed runs first (default 5)"
    )
    add_shapes_argument(
        p,
        "input shapes, NAME:1x3x640x640 (for dynamic inputs; the opt shape of a range; default: "
        "the declared shapes, a dynamic dim 1, or 224 for the last two dims of a 4-D input); "
        "the values are synthetic: floats standard normal, integers 0..3, booleans 0/1",
    )
    p.add_argument(
        "--inputs",
        default=None,
        metavar="NPZ",
        help="feeds to time with: an .npz of one array per input name",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        metavar="N",
        help="samples per run, for the throughput (default: read from the inputs: the batch "
        "dim of the largest input of rank 2 or more, which is a dim named like 'batch' or "
        "'N', dim 1 of a sequence-first LSTM/GRU/RNN input, else dim 0; 1 without such an "
        "input)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (runs done) on stderr"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from graphopt.backends.tensorrt import parse_shapes
    from graphopt.commands.build import require_input_file
    from graphopt.errors import BackendError
    from graphopt.quant.progress import Progress

    if args.runs < 1 or args.warmup < 0:
        raise BackendError("--runs must be at least 1 and --warmup at least 0")
    if args.batch is not None and args.batch < 1:
        raise BackendError(f"--batch must be at least 1, got {args.batch}")
    if args.threads < 0:
        raise BackendError(f"--threads must be 0 (one per core) or more, got {args.threads}")
    if args.threads and args.backend == "tensorrt":  # the engine runs on the GPU
        raise BackendError("--threads sets onnxruntime's CPU threads; not for --backend tensorrt")
    if args.level and args.backend == "tensorrt":
        raise BackendError(
            "--level is onnxruntime's optimization level; not for --backend tensorrt"
        )
    if args.shapes and args.inputs:  # the .npz's arrays are timed as they are
        raise BackendError(
            "--shapes sets the synthetic inputs' shapes: use it without --inputs (the .npz "
            "arrays are timed in their own shapes)"
        )
    shapes = {name: r.opt for name, r in parse_shapes(args.shapes).items()}
    require_input_file(args.input)  # before TensorRT's import: "not installed" hid it
    # no bar where there is no stderr to draw it on (closed, pythonw): it failed the run
    show = not args.no_progress and sys.stderr is not None
    progress = Progress(args.warmup + args.runs, label="bench") if show else None
    on_run = progress.update if progress else None
    try:
        if args.backend == "onnxruntime":
            result = bench_onnxruntime(
                args.input,
                args.runs,
                args.warmup,
                args.threads,
                shapes,
                args.inputs,
                on_run,
                batch=args.batch,
                level=args.level or "all",
            )
        else:
            result = bench_tensorrt(
                args.input, args.runs, args.warmup, shapes, args.inputs, on_run, batch=args.batch
            )
    finally:
        if progress:
            progress.close()
    print(json.dumps(asdict(result)) if args.json else result.line())
    return 0


def _feeds(model, shapes: dict[str, tuple[int, ...]], npz: str | None) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    from graphopt.backends.onnxruntime import example_feeds
    from graphopt.commands.optimize import _refuse_unfit_feeds
    from graphopt.ir.values import declared_dims

    # its errors name the flag (they said "PATH: cannot read input feeds: ...", the path raw)
    npz_name = f"--inputs {shown(npz)}" if npz is not None else None
    feeds = example_feeds(
        model,
        npz=npz,
        shapes=shapes,
        dims=None if npz is not None else _shared_dims(model, shapes),
        npz_name=npz_name,
        real_inputs="--inputs NPZ",
    )
    # a feed of another rank or fixed dim than its input is named with the flag that gave it,
    # as optimize --verify names it: onnxruntime's own words ("Invalid rank for input: x Got:
    # 3 Expected: 4") named neither the file nor the flag. An input declared with no dims (a
    # scalar, or a shape left empty) is left out: onnxruntime checks no rank for it and runs
    # a feed of any shape, which bench times as the model is
    scalars = {vi.name for vi in model.graph.input if declared_dims(vi) == ()}
    checked = {name: array for name, array in feeds.items() if name not in scalars}
    _refuse_unfit_feeds(model, checked, {}, {}, npz, {} if npz is not None else shapes)
    return feeds


def _other_shapes(
    model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]], feeds: dict[str, np.ndarray]
) -> str:
    """ ", or other shapes with --shapes ..." where a dynamic input took a size bench chose (1,
    or 224 for an image's height and width): a text recognizer fed 1x3x224x224 fails where
    its weights fix its height, and the hint named only --inputs."""
    from graphopt.ir.values import declared_dims

    chosen = [
        vi.name
        for vi in model.graph.input
        if vi.name not in shapes
        and vi.name in feeds
        and any(not isinstance(d, int) for d in declared_dims(vi) or ())
    ]
    if not chosen:
        return ""
    made = "x".join(map(str, feeds[chosen[0]].shape))
    return f", or other shapes with --shapes NAME:DIMS ({shown(chosen[0])} was {made})"


def _shared_dims(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """{dim_param: size} for the synthetic feeds, so that inputs that share a named dim get one
    size: the size `shapes` (--shapes) gives it in an input it names, else 224 where it is a
    spatial dim (index 2 or 3) of a 4-D input, as `example_feeds` sizes those. Each input's
    symbolic dims were sized on their own: `--shapes image:2x3x64x64` left a mask [N, H, W]
    at 1x1x1 (onnxruntime: "Shape mismatch attempting to re-use buffer", or a broadcast timed
    in place of the declared shapes), and so did the defaults (image 1x3x224x224)."""
    from graphopt.ir.values import declared_dims

    sizes: dict[str, int] = {}
    declared = [(vi.name, declared_dims(vi) or ()) for vi in model.graph.input]
    for name, dims in declared:
        for dim, size in zip(dims, shapes.get(name, ()), strict=False):
            if _named(dim):
                sizes.setdefault(dim, int(size))
    for name, dims in declared:
        if len(dims) == 4 and name not in shapes:
            for dim in dims[2:]:
                if _named(dim):
                    sizes.setdefault(dim, 224)
    return sizes


def _named(dim: object) -> TypeGuard[str]:
    """Whether a declared dim is a name inputs may share: not '?', which PaddlePaddle's
    exporter writes for every dynamic dim (and `input_specs` for a dim of -1): sized 224 as an
    image's height, it made ppocr's batch 224 too."""
    return isinstance(dim, str) and dim != "?"


def bench_onnxruntime(
    path: str,
    runs: int,
    warmup: int,
    threads: int = 0,
    shapes: dict[str, tuple[int, ...]] | None = None,
    npz: str | None = None,
    on_run: Callable[[int], None] | None = None,
    *,
    batch: int | None = None,
    level: str = "all",
) -> BenchResult:
    """Times `runs` runs of the model at `path` after `warmup` untimed ones, in a session at
    onnxruntime graph optimization `level`; `on_run(done)` is called with 0 before the first
    and with the runs done (warmup included) after each, outside the timed span. `batch`:
    samples per run (None: `batch_size` of the feeds)."""
    from graphopt.backends.onnxruntime import BITS_OUTPUTS, ort_feeds, run_error_text, session
    from graphopt.errors import BackendError, LoadError
    from graphopt.ir import load
    from graphopt.ir.model_io import _over_two_gib

    try:
        loaded = load(path)
    except LoadError as e:  # an engine (trtexec's and build's names): said as such
        if os.path.splitext(path)[1].lower() not in ENGINE_SUFFIXES or not os.path.isfile(path):
            raise
        raise LoadError(
            f"{e}; a TensorRT engine (graphopt build's) is timed with --backend tensorrt"
        ) from e
    model = loaded.model
    require_utf8_io_names(model, shown(path), BackendError)
    feeds = _feeds(model, shapes or {}, npz)
    # onnxruntime takes a model over 2 GiB only from a file with external data, which is what
    # such a model's path is: from memory it was refused ("it is over 2 GiB, which onnxruntime
    # takes only from a file with external data, not in memory")
    source = path if loaded.external_data and _over_two_gib(model) else model
    # (its load error escapes the model's names itself: "in node (a\ndd)", not "in node (a")
    sess = session(source, threads=threads, level=level)
    names = [o.name for o in sess.get_outputs()]
    tick = on_run or _no_progress
    times = []
    # a run that fails on values bench made up (an int64 input read as a shape or an index)
    # said only onnxruntime's words, as if the model were broken (a model without inputs has
    # no values made up: nothing to say)
    made_up = (
        "; on synthetic inputs (floats standard normal, integers 0..3): give real ones with "
        "--inputs NPZ" + _other_shapes(model, shapes or {}, feeds)
        if npz is None and feeds
        else ""
    )
    # only onnxruntime's errors are its own (untyped: e.g. a wrong feed shape); a failing
    # `on_run` (a progress bar with no stderr to draw on) was reported as onnxruntime failing
    # to run the model
    # a bfloat16 feed as an OrtValue of its bits, made once; a model with an output numpy has
    # no type for (bfloat16, int4, float8: `BITS_OUTPUTS`) is run for OrtValues (the session's
    # run: "No corresponding Numpy type for Tensor Type. Int4x2", said as if the inputs were
    # at fault)
    bits = any(o.type in BITS_OUTPUTS for o in sess.get_outputs())
    timed = ort_feeds(feeds, all_values=bits)
    run_once = sess.run_with_ort_values if bits else sess.run
    tick(0)
    for done in range(1, warmup + runs + 1):
        start = time.perf_counter()
        try:
            run_once(names, timed)
        except Exception as e:
            raise BackendError(
                f"onnxruntime failed to run {shown(path)}: "
                # a name's newline joined as a space ('re shape'): escaped ('re\\nshape')
                f"{run_error_text(e, model=model)}{made_up}"
            ) from e
        if done > warmup:
            times.append(time.perf_counter() - start)
        tick(done)
    result = summarize("onnxruntime", path, times, batch or batch_size(feeds, model), feeds)
    result.level = level
    result.synthetic = npz is None and bool(feeds)  # (a model without inputs: nothing made up)
    return result


def bench_tensorrt(
    path: str,
    runs: int,
    warmup: int,
    shapes: dict[str, tuple[int, ...]] | None = None,
    npz: str | None = None,
    on_run: Callable[[int], None] | None = None,
    *,
    batch: int | None = None,
) -> BenchResult:
    from pathlib import Path

    from graphopt.backends.tensorrt import import_tensorrt
    from graphopt.backends.trt_runtime import EngineRunner, require_cuda_device
    from graphopt.errors import BackendError

    if path.lower().endswith(".onnx"):  # (MODEL.ONNX too: it was read as an engine)
        raise BackendError(
            f"{shown(path)} is an ONNX model: build an engine first with 'graphopt build "
            f"{shown(path)} -o MODEL.plan'"
        )
    import_tensorrt()
    require_cuda_device()
    try:
        plan = Path(path).read_bytes()
    except OSError as e:
        raise BackendError(f"{shown(path)}: cannot read the engine: {e.strerror}") from e
    runner = EngineRunner(plan)
    feeds = _engine_feeds(runner, shapes or {}, npz)
    times = runner.time_runs(feeds, runs, warmup, on_run)
    result = summarize("tensorrt", path, times, batch or batch_size(feeds), feeds)
    result.synthetic = npz is None and bool(feeds)  # (an engine without inputs: nothing made up)
    return result


def _no_progress(done: int) -> None:
    """`on_run` when no one follows the runs."""


_RECURRENT = {"LSTM": 0, "GRU": 0, "RNN": 0}  # op → input index of X: [seq, batch, ...] at layout 0
_BATCH_NAME = re.compile(r"(?i).*batch.*|n|b")  # a dim_param that names the batch


def batch_size(feeds: dict[str, np.ndarray], model: onnx.ModelProto | None = None) -> int:
    """Samples per run: the batch dim of the largest input (most elements; the first of
    equals) of rank 2 or more, as `batch_axis` finds it in `model` (without one, as an
    engine's: dim 0); a rank-1 input counts only with a dim named as a batch; 1 when no input
    has a batch. The first input's dim 0 was wrong for a sequence-first input (an LSTM's X is
    [seq, batch, features]) and for a first input that has no batch (a 1-D scale)."""
    best: tuple[int, int] | None = None  # (size, batch)
    weights = {t.name for t in model.graph.initializer} if model is not None else set()
    for name, value in feeds.items():
        if name in weights:  # an overridable weight fed from --inputs: no sample of a batch
            continue
        shape = np.shape(value)
        axis = batch_axis(model, name, len(shape)) if model is not None else 0
        if len(shape) < 2 and (model is None or _named_batch(model, name) is None):
            continue
        if axis is not None and axis < len(shape) and (best is None or np.size(value) > best[0]):
            best = (int(np.size(value)), int(shape[axis]))
    return best[1] if best is not None else 1


def batch_axis(model: onnx.ModelProto, name: str, rank: int) -> int | None:
    """The batch axis of input `name` of `model`: a dim whose name says batch ('batch',
    'batch_size', 'N', 'B'), else 1 where the input is the X of an LSTM/GRU/RNN at its default
    layout 0 ([seq, batch, features]), else 0; None for a scalar."""
    if rank == 0:
        return None
    named = _named_batch(model, name)
    if named is not None:
        return named
    for node in model.graph.node:
        x = _RECURRENT.get(node.op_type)
        if x is not None and len(node.input) > x and node.input[x] == name:
            layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
            if layout == 0 and rank >= 2:
                return 1
    return 0


def _named_batch(model: onnx.ModelProto, name: str) -> int | None:
    """The axis of input `name` whose dim_param names a batch, None if none does. (A
    dim_param that is not UTF-8 in the file comes as bytes: read with the bad bytes replaced,
    it was a TypeError from the pattern.)"""
    for vi in model.graph.input:
        if vi.name == name and vi.type.HasField("tensor_type"):
            for axis, dim in enumerate(vi.type.tensor_type.shape.dim):
                param = dim.dim_param
                if isinstance(param, bytes):
                    param = param.decode("utf-8", "replace")
                if param and _BATCH_NAME.fullmatch(param):
                    return axis
    return None


def _engine_feeds(
    runner, shapes: dict[str, tuple[int, ...]], npz: str | None
) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    from graphopt.backends.tensorrt import shape_spec
    from graphopt.errors import BackendError

    if npz is not None:
        try:
            given = read_npz(npz)
        except (OSError, ValueError) as e:
            raise BackendError(f"--inputs {shown(npz)}: cannot read input feeds: {e}") from e
        return _engine_npz_feeds(runner, given, npz)
    inputs = [b for b in runner.bindings if b.is_input]
    unknown = sorted(set(shapes) - {b.name for b in inputs})
    if unknown:  # as example_feeds refuses them for onnxruntime: a typo was ignored
        raise BackendError(
            f"--shapes names {', '.join(unknown)}, which are not engine inputs (inputs: "
            f"{', '.join(b.name for b in inputs)})"
        )
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {}
    for b in inputs:
        dims = shapes.get(b.name) or tuple(runner.engine.get_tensor_shape(b.name))
        if any(d < 0 for d in dims):
            example = "x".join(map(str, _engine_example_shape(runner, b.name, dims)))
            raise BackendError(
                f"engine input {b.name!r} is dynamic: give --shapes {shape_spec(b.name, example)}"
            )
        feeds[b.name] = synthetic_feed(tuple(dims), b.dtype, rng)
    return feeds


def _engine_example_shape(runner, name: str, dims: Sequence[int]) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """A shape dynamic engine input `name` (engine dims `dims`, -1 where dynamic) takes: the
    opt shape of the engine's profile 0, else its dims with 1 for each dynamic one. The error
    said 1x3x640x640 whatever the input's rank (an input [-1, 4] was told to take it)."""
    try:
        _, opt, _ = runner.engine.get_tensor_profile_shape(name, 0)
        shape = tuple(int(d) for d in opt)
    except (AttributeError, TypeError, ValueError, RuntimeError):  # no profile to read
        shape = ()
    if len(shape) != len(dims) or any(d < 0 for d in shape):
        shape = tuple(1 if d < 0 else int(d) for d in dims)
    return shape


def _engine_npz_feeds(runner, given: dict[str, np.ndarray], npz: str) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """`given` (the arrays of --inputs `npz`) where each names an engine input of its dtype,
    as example_feeds checks an .npz for onnxruntime; else a `BackendError`. An array for no
    input was ignored by the engine yet named among the timed inputs (and could set the
    batch), and an array of another dtype was cast (float64 to float32, floats to int32)."""
    from graphopt.errors import BackendError

    label = f"--inputs {shown(npz)}"
    inputs = {b.name: b for b in runner.bindings if b.is_input}
    extra = [name for name in given if name not in inputs]
    if extra:
        raise BackendError(
            f"{label}: {', '.join(map(shown, extra))} is no input of the engine (inputs: "
            f"{', '.join(inputs) or 'none'})"
        )
    missing = [name for name in inputs if name not in given]
    if missing:
        raise BackendError(f"{label}: no array for engine input(s) {', '.join(missing)}")
    for name, array in given.items():
        if array.dtype != inputs[name].dtype:
            raise BackendError(
                f"{label}: {name} is {array.dtype}, but the engine's input {name} is "
                f"{np.dtype(inputs[name].dtype)}"
            )
    return given


def synthetic_feed(
    shape: tuple[int, ...], dtype: np.dtype | type, rng: np.random.Generator
) -> np.ndarray:
    """A stand-in input of `shape` for timing, drawn from `rng`: floats standard normal;
    integers small non-negative values 0..3 (valid as indices, counts and sizes of a dimension
    of 4 or more, as `example_feeds` makes them); booleans False/True. Never cast noise, which
    would make -1 (or 255 in uint8) from a negative draw."""
    kind = np.dtype(dtype)
    if kind.kind == "f":
        return rng.standard_normal(shape).astype(kind)
    if kind.kind == "b":
        return rng.integers(0, 2, shape).astype(np.bool_)
    if kind.kind in "iu":
        return rng.integers(0, 4, shape).astype(kind)
    from graphopt.errors import BackendError

    raise BackendError(f"cannot make a synthetic {kind} input for timing: give --inputs NPZ")
