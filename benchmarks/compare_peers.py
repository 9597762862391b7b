"""Side-by-side comparison of graphopt with onnxsim, onnxslim, onnxoptimizer and onnxruntime's
offline optimizer on the real detectors (issue 4, item 5).

For every tool and model it records:

- optimize time: path in → file out, median over `--opt-runs` rounds interleaved (ABBA) with
  the load + serialize + write floor of the same file, and the ratio to that floor;
- node count: non-`Constant` nodes of the main graph, of If/Loop/Scan bodies and of the
  model's own functions in place of their calls (and the op histogram);
- onnxruntime CPU latency of the output at ORT_ENABLE_ALL and at ORT_DISABLE_ALL, 2 intra-op
  threads, `--runs` rounds; PAIRED and INTERLEAVED: every round runs every (tool, level)
  session once on the same real image, in a rotating order, each time back to back with the
  original model at ORT_ENABLE_ALL, so machine noise hits both; every timed run follows an
  untimed run of the same session (hot caches and threads for all, not only for the
  reference); a ratio is the median (and p25–p75) of those pairs' ratios;
- max output difference vs the original (both run at ORT_DISABLE_ALL, and the tool's output
  at ORT_ENABLE_ALL too): per output (matched by name), max |a − b| / max |a| over all real
  images, then the max over outputs.

Each tool runs in its own subprocess (`--worker`), so an exception, a crash or a hang of one
peer becomes "failed: <one line>" in the results instead of ending the comparison.

    python benchmarks/compare_peers.py [--models ...] [--tools ...] [--runs 20] [--opt-runs 5]
                                      [--out benchmarks/results/peers.json]
    python benchmarks/render_results.py   # markdown table + bar chart from the JSON

What it does not do: GPU/TensorRT latency (no GPU here), INT8 models.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# benchmarks/ is not a package: import the sibling module from this folder
from bench_optimize import (
    MODEL_NAMES,
    dump_json,
    floor_once,
    graphopt_once,
    machine_info,
    measure_pair,
    nodes_that_run,
    non_constant_nodes,
)

THREADS = 2
LEVELS = ("all", "disable")  # keys of graphopt.backends.onnxruntime.LEVELS
REFERENCE = ("original", "all")  # latency ratios are relative to this session
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "peers.json"

ToolFn = Callable[[Path, Path], None]


# ------------------------------------------------------------------------- the tools


def _graphopt(pipeline: str) -> ToolFn:
    def run(src: Path, dst: Path) -> None:
        graphopt_once(src, dst, pipeline)

    return run


def _onnxsim(src: Path, dst: Path) -> None:
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(str(src)))
    if not ok:
        raise RuntimeError("onnxsim's own check of the simplified model failed")
    onnx.save(model, str(dst))


def _onnxslim(src: Path, dst: Path) -> None:
    import onnxslim

    onnxslim.slim(str(src), str(dst))


def _onnxoptimizer(src: Path, dst: Path) -> None:
    import onnxoptimizer

    passes = onnxoptimizer.get_fuse_and_elimination_passes()
    onnx.save(onnxoptimizer.optimize(onnx.load(str(src)), passes), str(dst))


def _ort_offline(level: str) -> ToolFn:
    def run(src: Path, dst: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        opts.optimized_model_filepath = str(dst)
        opts.log_severity_level = 3
        ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])

    return run


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


def graphopt_pipelines() -> list[str]:
    """The built-in pipelines this comparison knows about that exist in this checkout."""
    from graphopt.pipeline import builtin_pipelines

    present = builtin_pipelines()
    return [
        p
        for p in ("default", "ort-fusions", "ort-cpu", "ort-cpu-native", "tensorrt")
        if p in present
    ]


def all_tools() -> dict[str, ToolFn]:
    """Tool name → function(src, dst) writing the tool's output model. `original` copies."""
    tools: dict[str, ToolFn] = {"original": _copy}
    for p in graphopt_pipelines():
        tools[f"graphopt:{p}"] = _graphopt(p)
    tools["onnxsim"] = _onnxsim
    tools["onnxslim"] = _onnxslim
    tools["onnxoptimizer"] = _onnxoptimizer
    tools["ort:basic"] = _ort_offline("ORT_ENABLE_BASIC")
    tools["ort:extended"] = _ort_offline("ORT_ENABLE_EXTENDED")
    return tools


def one_line(err: BaseException | str) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(err, BaseException):
        first = f"{type(err).__name__}: {first}" if first else type(err).__name__
    return first[:200]


# ------------------------------------------------------------------- optimize timing


def time_tool(fn: ToolFn, src: Path, dst: Path, runs: int) -> dict[str, Any]:
    """Run `fn` interleaved with the floor; the summary of `bench_optimize.measure_pair`."""
    floor_dst = dst.with_name(dst.stem + ".floor.onnx")
    try:
        return measure_pair(
            lambda: floor_once(src, floor_dst), lambda: fn(src, dst), runs, warmup=2
        )
    finally:
        floor_dst.unlink(missing_ok=True)


def run_tool(
    tool: str, fn: ToolFn | None, src: Path, dst: Path, runs: int, isolate: bool, timeout: float
) -> dict[str, Any]:
    """Optimize `src` into `dst` with `tool`; {"optimize": summary} or {"error": one line}.

    `isolate` runs the tool in a subprocess (this file with `--worker`), so a crash or hang
    is reported; otherwise `fn` runs here and only exceptions are caught.
    """
    if tool == "original":
        _copy(src, dst)
        return {"optimize": None}
    if not isolate:
        assert fn is not None
        try:
            return {"optimize": time_tool(fn, src, dst, runs)}
        except Exception as e:  # a peer's failure is a result, not a crash
            return {"error": f"failed: {one_line(e)}"}
    result = dst.with_suffix(".result.json")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, str(src), str(dst)]
    cmd += [str(runs), str(result)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"failed: timed out after {timeout:.0f} s"}
    if result.is_file():
        out = json.loads(result.read_text())
        result.unlink()
        return out
    tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return {"error": f"failed: exit code {done.returncode}: {tail[:200]}"}


def worker(tool: str, src: str, dst: str, runs: str, result: str) -> int:
    """Subprocess entry: time one tool, write {"optimize": ...} or {"error": ...} to `result`."""
    tools = all_tools()
    try:
        out: dict[str, Any] = {"optimize": time_tool(tools[tool], Path(src), Path(dst), int(runs))}
    except Exception as e:  # report any failure of the peer as one line
        out = {"error": f"failed: {one_line(e)}"}
    Path(result).write_text(json.dumps(out))
    return 0


# -------------------------------------------------------------------- graph facts


def node_facts(path: Path) -> dict[str, Any]:
    model = onnx.load(str(path), load_external_data=False)
    nodes = nodes_that_run(model)
    ops = Counter(
        (f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type)
        for n in nodes
    )
    return {
        "non_constant": non_constant_nodes(model),
        "total": len(nodes),
        "constant": ops.get("Constant", 0),
        "ops": dict(sorted(ops.items())),
        "file_bytes": path.stat().st_size,
    }


# --------------------------------------------------------------------- onnxruntime


def _session(path: Path, level: str) -> Any:
    from graphopt.backends.onnxruntime import session

    return session(path, threads=THREADS, level=level)


def max_rel_diff(reference: list[list[np.ndarray]], got: list[list[np.ndarray]]) -> float:
    """max over outputs of  max over feeds |a − b|  /  max over feeds |a|.

    The scale is an output's range over all images, not per image: a text detector's
    probability map on a photograph without text is ~1e-7 everywhere, and dividing by that
    would turn float noise into a "difference" of order 1. Another number of outputs, like
    another shape, is an infinite difference. A NaN where the original has a number (or a
    number where it has NaN) makes the result NaN: Python's `max(d, nan)` keeps `d`, which
    hid it. The same NaN or infinity on both sides is no difference.
    """
    if any(len(r) != len(g) for r, g in zip(reference, got, strict=True)):
        return float("inf")
    per_output: list[float] = []
    for index in range(len(reference[0]) if reference else 0):
        deltas, scale = [], 0.0
        for ref_outs, got_outs in zip(reference, got, strict=True):
            a, b = ref_outs[index], got_outs[index]
            if a.shape != b.shape:
                return float("inf")
            if a.size == 0:
                continue
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
            with np.errstate(invalid="ignore"):  # inf − inf: NaN, 0 where both are the same
                # (np.where, not item assignment: a 0-d output's |a − b| is a numpy scalar)
                diff = np.where(same, 0.0, np.abs(a64 - b64))
            deltas.append(float(np.max(diff)))  # NaN where only one side is NaN
            finite = np.abs(a64[np.isfinite(a64)])
            scale = max(scale, float(np.max(finite)) if finite.size else 0.0)
        delta = float(np.max(deltas)) if deltas else 0.0  # np.max keeps a NaN
        per_output.append(delta / (scale or 1.0))
    return float(np.max(per_output)) if per_output else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def latency_stats(times: Sequence[float], ratios: Sequence[float]) -> dict[str, Any]:
    """Median / p25 / p75 of the latencies and of the paired ratios to the reference."""
    return {
        "median_ms": statistics.median(times) * 1e3,
        "p25_ms": _percentile(times, 25) * 1e3,
        "p75_ms": _percentile(times, 75) * 1e3,
        "ratio": statistics.median(ratios),
        "ratio_p25": _percentile(ratios, 25),
        "ratio_p75": _percentile(ratios, 75),
        "times_ms": [round(t * 1e3, 3) for t in times],
    }


def _hot_run(sess: Any, feed: dict[str, np.ndarray]) -> float:
    """Seconds of one run of `sess`, timed right after an untimed run of the same session.

    Without the untimed run the reference, which runs every other time, would be the only
    session with its weights in cache and its own (spinning) worker threads awake, while every
    other session would start cold behind another session's spinning threads: on this 2-core
    machine that biased the ratios by up to 2x. A hot run is what a serving loop sees.
    """
    sess.run(None, feed)
    start = time.perf_counter()
    sess.run(None, feed)
    return time.perf_counter() - start


def paired_latency(
    sessions: dict[tuple[str, str], Any],
    reference: tuple[str, str],
    feeds: Sequence[dict[str, np.ndarray]],
    runs: int,
    warmup: int = 2,
) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], list[float]]]:
    """Latencies and per-pair ratios to the `reference` session, interleaved and paired.

    Round r uses feeds[r % len(feeds)] and visits every other session once, in an order
    rotated by r (reversed on odd rounds); each visit times a hot run (`_hot_run`) of the
    reference and of the session back to back (which one first alternates), so the pair sees
    the same machine load and their ratio is one sample. Returns (times, ratios) per session; the reference's times
    are all its runs and its ratios are 1.
    """
    others = [k for k in sessions if k != reference]
    for r in range(warmup):
        for k in sessions:
            sessions[k].run(None, feeds[r % len(feeds)])
    times: dict[tuple[str, str], list[float]] = {k: [] for k in sessions}
    ratios: dict[tuple[str, str], list[float]] = {k: [] for k in sessions}
    ref = sessions[reference]
    for r in range(runs):
        feed = feeds[r % len(feeds)]
        shift = r % max(1, len(others))
        order = others[shift:] + others[:shift]
        if r % 2:
            order.reverse()
        for i, k in enumerate(order):
            if (r + i) % 2:
                t_ref, t = _hot_run(ref, feed), _hot_run(sessions[k], feed)
            else:
                t, t_ref = _hot_run(sessions[k], feed), _hot_run(ref, feed)
            times[k].append(t)
            ratios[k].append(t / t_ref)
            times[reference].append(t_ref)
        ratios[reference].append(1.0)
    return times, ratios


# ---------------------------------------------------------------------- one model


@dataclass
class Settings:
    runs: int = 20
    opt_runs: int = 5
    images: int = 4
    isolate: bool = True
    timeout_s: float = 1200.0


def compare_model(
    name: str,
    src: Path,
    feeds: Sequence[dict[str, np.ndarray]],
    workdir: Path,
    tools: dict[str, ToolFn],
    settings: Settings,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Every tool on one model: optimize time, nodes, latency, max diff (raw numbers)."""
    rows: dict[str, dict[str, Any]] = {}
    outputs: dict[str, Path] = {}
    for tool, fn in tools.items():
        dst = workdir / f"{name}.{tool.replace(':', '_')}.onnx"
        row = run_tool(tool, fn, src, dst, settings.opt_runs, settings.isolate, settings.timeout_s)
        if "error" not in row:
            if not dst.is_file():
                row["error"] = "failed: the tool wrote no output file"
            else:
                try:
                    row["nodes"] = node_facts(dst)
                    outputs[tool] = dst
                except Exception as e:  # a file onnx cannot read is the tool's failure
                    row["error"] = f"failed: its output does not load: {one_line(e)}"
        rows[tool] = row
        log(f"{name}: {tool}: {row.get('error') or 'ok'}")

    sessions: dict[tuple[str, str], Any] = {}
    for tool, path in outputs.items():
        for level in LEVELS:
            try:
                sessions[(tool, level)] = _session(path, level)
            except Exception as e:  # the tool's output does not load: report, go on
                rows[tool].setdefault("latency", {})[level] = {"error": f"failed: {one_line(e)}"}
    if REFERENCE not in sessions or ("original", "disable") not in sessions:
        raise RuntimeError(f"{name}: onnxruntime cannot load the original model")

    original = sessions[("original", "disable")]
    names = [o.name for o in original.get_outputs()]
    reference = [original.run(names, f) for f in feeds]
    for key, sess in list(sessions.items()):
        tool, level = key
        # outputs by name where the tool kept the names (it may list them in another order),
        # else in its order (another count or shape is then an infinite difference)
        same = sorted(o.name for o in sess.get_outputs()) == sorted(names)
        try:
            got = [sess.run(names if same else None, f) for f in feeds]
        except Exception as e:  # loads but does not run: report, drop from timing
            rows[tool].setdefault("latency", {})[level] = {"error": f"failed: {one_line(e)}"}
            del sessions[key]
            continue
        rows[tool].setdefault("max_diff", {})[level] = max_rel_diff(reference, got)
    log(f"{name}: timing {len(sessions)} sessions x {settings.runs} rounds")

    times, ratios = paired_latency(sessions, REFERENCE, feeds, settings.runs)
    for (tool, level), ts in times.items():
        stats = latency_stats(ts, ratios[(tool, level)])
        rows[tool].setdefault("latency", {})[level] = stats
    shapes = {k: list(v.shape) for k, v in feeds[0].items()}
    return {"source": src.name, "input_shapes": shapes, "tools": rows}


def compare(
    models: Sequence[str], tools: dict[str, ToolFn], settings: Settings, log: Callable[[str], None]
) -> dict[str, Any]:
    """The whole comparison: machine info, settings and per-model results."""
    from graphopt.realmodels import fetch_model, model_inputs

    started = machine_info()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="graphopt-peers-") as tmp:
        for name in models:
            feeds = model_inputs(name, settings.images)
            results[name] = compare_model(
                name, fetch_model(name), feeds, Path(tmp), tools, settings, log
            )
    machine = machine_info()
    machine["loadavg_1m_start"] = started["loadavg_1m"]
    return {
        "machine": machine,
        "settings": {
            "latency_runs": settings.runs,
            "optimize_runs": settings.opt_runs,
            "images": settings.images,
            "intra_op_threads": THREADS,
            "latency_reference": "original model at ORT_ENABLE_ALL, run back to back with "
            "each measured run (order alternating); ratio = median of the pairs' ratios",
            "latency_runs_are_hot": "each timed run follows an untimed run of the same session",
            "max_diff_reference": "original model at ORT_DISABLE_ALL; per output "
            "max|a-b| / max|a| over all images, max over outputs",
            "nodes": "non-Constant nodes: main graph, If/Loop/Scan bodies, model-local "
            "functions' nodes for their calls (ort-cpu's guard: the NCHWc branch)",
            "onnxoptimizer_passes": "get_fuse_and_elimination_passes()",
        },
        "models": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return worker(*argv[1:6])
    tools = all_tools()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    p.add_argument("--tools", nargs="+", default=list(tools), help="default: all")
    p.add_argument("--runs", type=int, default=30, help="latency rounds (≥ 20)")
    p.add_argument("--opt-runs", type=int, default=5, help="optimize-time rounds (≥ 5)")
    p.add_argument("--images", type=int, default=4, help="real images per model")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--no-isolate", action="store_true", help="run tools in this process")
    args = p.parse_args(argv)
    unknown = [t for t in args.tools if t not in tools]
    if unknown:
        p.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(tools)}")
    chosen = {t: tools[t] for t in tools if t in args.tools or t == "original"}
    settings = Settings(args.runs, args.opt_runs, args.images, not args.no_isolate)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    payload = compare(args.models, chosen, settings, log)
    out = Path(args.out)
    dump_json(payload, out)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
