"""`graphopt bench IN --backend onnxruntime|tensorrt [--threads N] [--runs N] [--warmup N]`.

Times inference: latency percentiles (p50/p90/p99, mean) and throughput. `onnxruntime` runs an
.onnx model on the CPU provider; `tensorrt` runs a serialized engine (`graphopt build`) on the
GPU, timing `execute_async_v3` + stream sync with the inputs already on the device. Inputs
come from `--inputs NPZ`, else they are synthetic (`synthetic_feed`): floats standard normal,
integers 0..3, booleans False/True, in the `--shapes` given for dynamic inputs (onnxruntime,
without them: a dynamic dim is 1, or 224 for the last two dims of a 4-D input; an engine needs
them). The result names the input shapes it timed. A progress bar on stderr counts the runs
(warmup included), as quantize's counts its batches (`--no-progress`: none); stdout holds only
the result.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from graphopt.commands._common import add_shapes_argument, read_npz, require_utf8_io_names


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

    def line(self) -> str:
        timed = ", ".join(
            f"{k} {'x'.join(map(str, v)) or 'scalar'}" for k, v in self.shapes.items()
        )
        return (
            f"{self.backend}: {self.model}: {self.runs} runs, p50 {self.p50_ms:.2f} ms, "
            f"p90 {self.p90_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, mean {self.mean_ms:.2f} ms, "
            f"min {self.min_ms:.2f} ms, {self.throughput:.1f} samples/s (batch {self.batch})"
            + (f", inputs {timed}" if timed else "")
        )


def summarize(
    backend: str,
    model: str,
    seconds: Sequence[float],
    batch: int,
    feeds: dict[str, np.ndarray] | None = None,
) -> BenchResult:
    """Percentiles (linear interpolation, as numpy) and throughput from per-run seconds;
    `feeds`: the timed inputs, whose shapes the result names."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    mean = float(ms.mean())
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
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
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: all)")
    p.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    add_shapes_argument(
        p,
        "input shapes, NAME:1x3x640x640 (for dynamic inputs; the opt shape of a range); the "
        "values are synthetic: floats standard normal, integers 0..3, booleans 0/1",
    )
    p.add_argument("--inputs", default=None, metavar="NPZ", help="feeds to time with (.npz)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (runs done) on stderr"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from graphopt.backends.tensorrt import parse_shapes
    from graphopt.errors import BackendError
    from graphopt.quant.progress import Progress

    if args.runs < 1 or args.warmup < 0:
        raise BackendError("--runs must be at least 1 and --warmup at least 0")
    if args.threads < 0:
        raise BackendError(f"--threads must be 0 (all cores) or more, got {args.threads}")
    if args.threads and args.backend == "tensorrt":  # the engine runs on the GPU
        raise BackendError("--threads sets onnxruntime's CPU threads; not for --backend tensorrt")
    if args.shapes and args.inputs:  # the .npz's arrays are timed as they are
        raise BackendError(
            "--shapes sets the synthetic inputs' shapes: use it without --inputs (the .npz "
            "arrays are timed in their own shapes)"
        )
    shapes = {name: r.opt for name, r in parse_shapes(args.shapes).items()}
    progress = None if args.no_progress else Progress(args.warmup + args.runs, label="bench")
    on_run = progress.update if progress else None
    try:
        if args.backend == "onnxruntime":
            result = bench_onnxruntime(
                args.input, args.runs, args.warmup, args.threads, shapes, args.inputs, on_run
            )
        else:
            result = bench_tensorrt(args.input, args.runs, args.warmup, shapes, args.inputs, on_run)
    finally:
        if progress:
            progress.close()
    print(json.dumps(asdict(result)) if args.json else result.line())
    return 0


def _feeds(model, shapes: dict[str, tuple[int, ...]], npz: str | None) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    from graphopt.backends.onnxruntime import example_feeds

    return example_feeds(model, npz=npz, shapes=shapes)


def bench_onnxruntime(
    path: str,
    runs: int,
    warmup: int,
    threads: int = 0,
    shapes: dict[str, tuple[int, ...]] | None = None,
    npz: str | None = None,
    on_run: Callable[[int], None] | None = None,
) -> BenchResult:
    """Times `runs` runs of the model at `path` after `warmup` untimed ones; `on_run(done)` is
    called with 0 before the first and with the runs done (warmup included) after each,
    outside the timed span."""
    from graphopt.backends.onnxruntime import run_error_text, session
    from graphopt.errors import BackendError
    from graphopt.ir import load_model

    model = load_model(path)
    require_utf8_io_names(model, path, BackendError)
    feeds = _feeds(model, shapes or {}, npz)
    sess = session(model, threads=threads)
    names = [o.name for o in sess.get_outputs()]
    tick = on_run or _no_progress
    times = []
    try:
        tick(0)
        for done in range(1, warmup + 1):
            sess.run(names, feeds)
            tick(done)
        for done in range(warmup + 1, warmup + runs + 1):
            start = time.perf_counter()
            sess.run(names, feeds)
            times.append(time.perf_counter() - start)
            tick(done)
    except Exception as e:  # onnxruntime raises its own untyped errors (e.g. a wrong feed shape)
        raise BackendError(f"onnxruntime failed to run {path}: {run_error_text(e)}") from e
    return summarize("onnxruntime", path, times, _batch(feeds), feeds)


def bench_tensorrt(
    path: str,
    runs: int,
    warmup: int,
    shapes: dict[str, tuple[int, ...]] | None = None,
    npz: str | None = None,
    on_run: Callable[[int], None] | None = None,
) -> BenchResult:
    from pathlib import Path

    from graphopt.backends.tensorrt import import_tensorrt
    from graphopt.backends.trt_runtime import EngineRunner, require_cuda_device
    from graphopt.errors import BackendError

    if path.endswith(".onnx"):
        raise BackendError(
            f"{path} is an ONNX model: build an engine first with 'graphopt build {path} -o MODEL.plan'"
        )
    import_tensorrt()
    require_cuda_device()
    try:
        plan = Path(path).read_bytes()
    except OSError as e:
        raise BackendError(f"{path}: cannot read the engine: {e.strerror}") from e
    runner = EngineRunner(plan)
    feeds = _engine_feeds(runner, shapes or {}, npz)
    times = runner.time_runs(feeds, runs, warmup, on_run)
    return summarize("tensorrt", path, times, _batch(feeds), feeds)


def _no_progress(done: int) -> None:
    """`on_run` when no one follows the runs."""


def _batch(feeds: dict[str, np.ndarray]) -> int:
    """Samples per run: the first input's leading dim (1 for none, or a scalar first input,
    whose shape[0] was an IndexError traceback)."""
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _engine_feeds(
    runner, shapes: dict[str, tuple[int, ...]], npz: str | None
) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    from graphopt.errors import BackendError

    if npz is not None:
        try:
            return read_npz(npz)
        except (OSError, ValueError) as e:
            raise BackendError(f"{npz}: cannot read input feeds: {e}") from e
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
            raise BackendError(
                f"engine input {b.name!r} is dynamic: give --shapes {b.name}:1x3x640x640"
            )
        feeds[b.name] = synthetic_feed(tuple(dims), b.dtype, rng)
    return feeds


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
