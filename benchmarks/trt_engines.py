"""TensorRT engines of the three real detectors: FP32 / FP16 / INT8 vs onnxruntime FP32.

Needs a machine with an NVIDIA GPU and TensorRT 10 or 11 (`pip install 'graphopt[tensorrt]'`);
run `bash benchmarks/device_check.sh` first to see what the machine has. For each detector:

1. optimize with the `tensorrt` pipeline (the `default` one where that is missing) and run the
   static check (`graphopt check --target tensorrt=<installed major>`);
2. onnxruntime FP32 (CPU) outputs on real photographs = the reference;
3. build engines: fp32, fp16, int8 (Q/DQ from `graphopt.quantize(..., target="tensorrt")`,
   calibrated on photographs other than the evaluation ones), and on TensorRT 10 with
   `--legacy` also int8 through the deprecated IInt8EntropyCalibrator2 (same photographs);
4. per engine: max |Δ| and max |Δ| / max |ref| per output against the reference (over all
   evaluation photographs; the Q/DQ model run in onnxruntime gives the INT8 yardstick), and
   GPU latency percentiles (execute_async_v3 + sync, inputs already on the device).

    python benchmarks/trt_engines.py [--models common_det ...] [--precisions fp32 fp16 int8]
        [--runs 50] [--warmup 10] [--legacy] [--out results.json] [--workdir DIR]

Prints a markdown table and, with --out, writes every number as JSON. Engines, timing caches and
calibration caches go to --workdir (default: a folder under the graphopt cache).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DETECTORS = ("common_det", "layout_cdla", "ppocr_det")
# Optimization profiles for dynamic inputs (PP-OCRv4 det takes any multiple of 32).
PROFILES = {"ppocr_det": ["x:1x3x320x320,1x3x640x640,1x3x1280x1280"]}
# Evaluation photographs (two with text, for the OCR and layout detectors); calibration uses
# CALIB_IMAGES others, so INT8 is never scored on the images it was calibrated on.
EVAL_NAMES = ("astronaut.png", "page.png", "text.png", "coffee.png")
CALIB_IMAGES = 8


def _optimize(path: Path) -> tuple[Any, str]:
    import graphopt
    from graphopt.errors import PipelineError

    for pipeline in ("tensorrt", "default"):
        try:
            return graphopt.optimize(str(path), pipeline=pipeline), pipeline
        except PipelineError:
            continue
    raise SystemExit("no usable pipeline")


def _feeds(name: str, model: Any, names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    from graphopt.realmodels import PREPROCESS, images, preprocess

    input_name = model.graph.input[0].name
    return [{input_name: preprocess(img, **PREPROCESS[name])} for img in images(names=tuple(names))]


def _compare(
    refs: Sequence[dict[str, np.ndarray]], gots: Sequence[dict[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Per output, over all evaluation images: max |Δ|, and max |Δ| / max |ref| (one scale for
    all images, so an image where the output is near zero does not blow the ratio up)."""
    out: dict[str, dict[str, float]] = {}
    for name in refs[0]:
        diff = max(
            float(
                np.abs(
                    r[name].astype(np.float64) - g[name].astype(np.float64).reshape(r[name].shape)
                ).max()
            )
            for r, g in zip(refs, gots, strict=True)
        )
        scale = max(float(np.abs(r[name]).max()) for r in refs) or 1.0
        out[name] = {"max_abs": diff, "max_rel": diff / scale}
    return out


def _worst(diffs: dict[str, dict[str, float]]) -> float:
    return max((d["max_rel"] for d in diffs.values()), default=float("nan"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import onnx

    from graphopt.backends import tensorrt as trt_backend
    from graphopt.backends.onnxruntime import run as ort_run
    from graphopt.backends.onnxruntime import session
    from graphopt.backends.trt_check import check_tensorrt, summary
    from graphopt.backends.trt_runtime import EngineRunner, require_cuda_device
    from graphopt.commands.bench import summarize
    from graphopt.realmodels import IMAGE_NAMES, cache_dir, fetch_model

    trt = trt_backend.import_tensorrt()
    require_cuda_device()
    major = trt_backend.trt_major(trt)
    workdir = Path(args.workdir or cache_dir() / "trt_engines" / trt.__version__)
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"tensorrt": trt.__version__, "models": {}}
    print(f"TensorRT {trt.__version__}; engines in {workdir}", flush=True)

    for name in args.models:
        model, pipeline = _optimize(fetch_model(name))
        optimized_path = workdir / f"{name}.opt.onnx"
        onnx.save(model, optimized_path)
        shapes = trt_backend.parse_shapes(PROFILES.get(name))
        findings = check_tensorrt(model, major, shapes=shapes)
        print(f"\n## {name} (pipeline {pipeline}): check: {summary(findings)}", flush=True)
        for f in findings:
            print(f"  {f}")
        eval_feeds = _feeds(name, model, EVAL_NAMES)
        calib_names = [n for n in IMAGE_NAMES if n not in EVAL_NAMES][:CALIB_IMAGES]
        calib_feeds = _feeds(name, model, calib_names)
        sess = session(model)
        refs = [ort_run(sess, f) for f in eval_feeds]
        ort_times = []
        for _ in range(max(3, args.runs // 10)):
            start = time.perf_counter()
            sess.run(None, eval_feeds[0])
            ort_times.append(time.perf_counter() - start)
        entry: dict[str, Any] = {
            "pipeline": pipeline,
            "check": [str(f) for f in findings],
            "onnxruntime_cpu_fp32": summarize("onnxruntime", name, ort_times, 1).__dict__,
            "engines": {},
        }
        variants: list[tuple[str, Any, dict[str, Any]]] = []
        for precision in args.precisions:
            if precision == "fp32":
                variants.append(("fp32", optimized_path, {}))
            elif precision == "fp16":
                variants.append(("fp16", optimized_path, {"fp16": True}))
            elif precision == "int8":
                import graphopt

                q = graphopt.quantize(
                    model,
                    calib_feeds,
                    target="tensorrt",
                    cache=workdir / f"{name}.graphopt.cache",
                )
                q_path = workdir / f"{name}.qdq.onnx"
                onnx.save(q, q_path)
                q_findings = check_tensorrt(q, major, shapes=shapes)
                q_diffs = _compare(refs, [ort_run(session(q), f) for f in eval_feeds])
                entry["onnxruntime_cpu_int8_qdq"] = {"max_diff_vs_ort_fp32": q_diffs}
                print(
                    f"  int8 Q/DQ model: check {summary(q_findings)}; in onnxruntime, max rel "
                    f"diff vs FP32 {_worst(q_diffs):.3g} (TensorRT INT8 should be close to this)"
                )
                variants.append(("int8-qdq", q_path, {"int8": True}))
                variants.append(("int8-qdq+fp16", q_path, {"int8": True, "fp16": True}))
                if args.legacy and major == 10:
                    variants.append(
                        (
                            "int8-calibrator",
                            optimized_path,
                            {
                                "int8": True,
                                "calibration": calib_feeds,
                                "cache": workdir / f"{name}.trt.cache",
                            },
                        )
                    )
        for label, src, options in variants:
            plan = workdir / f"{name}.{label}.plan"
            start = time.perf_counter()
            try:
                info = trt_backend.build_engine(
                    str(src),
                    plan,
                    shapes=shapes,
                    workspace_mib=args.workspace,
                    timing_cache=workdir / "timing.cache",
                    **options,
                )
            except Exception as e:  # report and go on with the next engine
                print(f"  {label}: build failed: {e}", flush=True)
                entry["engines"][label] = {"error": str(e)}
                continue
            build_s = time.perf_counter() - start
            runner = EngineRunner(plan.read_bytes())
            diffs = _compare(refs, [runner.run(feed) for feed in eval_feeds])
            times = runner.time_runs(eval_feeds[0], args.runs, args.warmup)
            lat = summarize("tensorrt", name, times, 1)
            entry["engines"][label] = {
                "precision": info.precision,
                "build_s": build_s,
                "engine_mib": info.engine_bytes / 2**20,
                "max_diff_vs_ort_fp32": diffs,
                "latency": lat.__dict__,
            }
            worst = _worst(diffs)
            print(
                f"  {label:16} build {build_s:6.1f} s  {info.engine_bytes / 2**20:7.1f} MiB  "
                f"max rel diff {worst:.3g}  p50 {lat.p50_ms:.3f} ms  p99 {lat.p99_ms:.3f} ms",
                flush=True,
            )
        results["models"][name] = entry
    _table(results)
    return results


def _table(results: dict[str, Any]) -> None:
    print(
        f"\n| model | engine | max rel diff vs ORT FP32 | p50 ms | p99 ms | TensorRT {results['tensorrt']} |"
    )
    print("|---|---|---|---|---|---|")
    for name, entry in results["models"].items():
        ort = entry["onnxruntime_cpu_fp32"]
        print(
            f"| {name} | onnxruntime CPU fp32 | 0 | {ort['p50_ms']:.2f} | {ort['p99_ms']:.2f} | |"
        )
        if "onnxruntime_cpu_int8_qdq" in entry:
            q = _worst(entry["onnxruntime_cpu_int8_qdq"]["max_diff_vs_ort_fp32"])
            print(f"| {name} | onnxruntime CPU int8 Q/DQ | {q:.3g} | | | |")
        for label, e in entry["engines"].items():
            if "error" in e:
                print(f"| {name} | {label} | build failed | | | |")
                continue
            worst = _worst(e["max_diff_vs_ort_fp32"])
            lat = e["latency"]
            print(
                f"| {name} | {label} | {worst:.3g} | {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | |"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    p.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "fp16", "int8"],
        choices=["fp32", "fp16", "int8"],
    )
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--workspace", type=int, default=2048, metavar="MiB")
    p.add_argument(
        "--legacy", action="store_true", help="TensorRT 10: also the implicit-INT8 calibrator"
    )
    p.add_argument("--workdir", default=None)
    p.add_argument("--out", default=None, help="write all numbers as JSON here")
    args = p.parse_args(argv)
    from graphopt.errors import GraphoptError

    try:
        results = run(args)
    except GraphoptError as e:
        print(f"trt_engines: {e}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
