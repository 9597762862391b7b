"""graphopt.quantize side by side with onnxruntime.quantization.quantize_static, on real detectors
and real photographs.

    python benchmarks/bench_quantize.py [--models common_det ppocr_det] [--runs 20]
        [--keep-float N] [--only LABEL ...] [--markdown benchmarks/results/quantize.md]

For every configuration, calibration runs in a fresh subprocess (so peak RSS is that tool's own:
the child's VmHWM) reading the calibration feeds from `.npy` files one at a time. The
parent then measures, for each INT8 model, onnxruntime CPU latency against FP32 (both
`ORT_ENABLE_ALL`, 2 intra-op threads, runs interleaved, median of `--runs`), and agreement
with FP32 on held-out images: common_det boxes matched at IoU ≥ 0.5 (ddddocr's decode and NMS),
DBNet text-mask IoU. The cost budget is 3 × (FP32 inference over the calibration set + one
`graphopt.optimize`).

"graphopt default" rows call `quantize_with_report(model, feeds, target=...)` with nothing else
(max calibration, accuracy target 0.04, local ranking); "samples page+text" rows also pass
page.png and text.png as `sensitivity_data`. Rows naming a method run that calibrator bare
(`accuracy_target=None`); keep-float rows rank with `ranking="full"`, as before the default
changed.

Split (fixed): calibration = the first 16 scikit-image photographs (ppocr_det: plus their mirror
images, 32 feeds at 640×640); evaluation = the other 6 photographs, their mirror images, and the
quadrants of the photographs at 2× zoom (common_det: all 22; ppocr_det: every other one), views
the calibration did not see. Agreement with FP32 needs no labels.
onnxruntime's Entropy and Percentile calibrators need minutes and many GB (Percentile keeps
every activation value: 23 GB on ppocr_det with 32 feeds); Entropy gets the first 4
(common_det) or 2 (ppocr_det) calibration feeds and Percentile 4 on ppocr_det, so the run stays
within this 24 GiB machine's memory; the table notes it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ORT_ENTROPY_FEEDS = {"common_det": 4, "ppocr_det": 2}
# onnxruntime's Percentile calibrator keeps every value: 23 GB peak on ppocr_det with 32 feeds
ORT_PERCENTILE_FEEDS = {"common_det": 16, "ppocr_det": 4}
# calibration feeds the sensitivity analysis runs on: page.png and text.png, the text-rich
# photographs
SENSITIVITY_FEEDS = (14, 15)
# groups kept float in the "keep-float" configuration (0: no such row); common_det meets its
# goal without, and keeping its most sensitive groups float did not raise its box match
KEEP_FLOAT = {"common_det": 0, "ppocr_det": 8}


# ----------------------------------------------------------------------------- data
def split(name: str) -> tuple[list[dict], list[dict]]:
    from graphopt.realmodels import PREPROCESS, images, model_inputs

    feeds = model_inputs(name, 22)
    mirrored = [{k: np.ascontiguousarray(v[..., ::-1]) for k, v in f.items()} for f in feeds]
    calib = feeds[:16] + (mirrored[:16] if name == "ppocr_det" else [])
    evaluation = feeds[16:] + mirrored[16:] + quadrant_crops(name, images(), PREPROCESS[name])
    return calib, evaluation


def quadrant_crops(name: str, photos: list[np.ndarray], spec: dict) -> list[dict]:
    """The four quadrants of each photograph, each preprocessed to the full input size (2×
    zoom): views the calibration never saw (page.png's quadrants carry most text boxes)."""
    import onnx

    from graphopt.realmodels import fetch_model, preprocess

    input_name = onnx.load(str(fetch_model(name)), load_external_data=False).graph.input[0].name
    step = 1 if name == "common_det" else 2  # the 640×640 text detector: every other photo
    crops = []
    for photo in photos[::step]:
        h, w = photo.shape[0] // 2, photo.shape[1] // 2
        for y in (0, h):
            for x in (0, w):
                crop = np.ascontiguousarray(photo[y : y + h, x : x + w])
                crops.append({input_name: preprocess(crop, **spec)})
    return crops


def write_feeds(feeds: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(feeds):
        (value,) = f.values()
        np.save(folder / f"feed{i:03d}.npy", value)


# ----------------------------------------------------------------------------- workers
def worker(args: argparse.Namespace) -> None:
    """Runs in a subprocess: calibrate + quantize, print seconds and peak RSS as JSON."""
    import onnx

    files = sorted(Path(args.calib).glob("*.npy"))[: args.limit or None]
    model = onnx.load(args.model)
    input_name = model.graph.input[0].name
    # Every term times what it names: the budget's "FP32 inference over the calibration set"
    # (its onnxruntime session made and run, as each calibration makes and runs its own) and
    # "one graphopt.optimize", each tool's calibration. Imports come first, untimed, for all
    # of them alike (a per-process constant, not the work compared).
    if args.tool == "fp32":
        from graphopt.backends.onnxruntime import session
    elif args.tool == "optimize":
        import graphopt
    elif args.tool == "ours":
        from graphopt.quant.api import quantize_with_report
    else:
        from onnx import version_converter
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    start = time.perf_counter()
    if args.tool == "ours":
        feeds = ({input_name: np.load(f)} for f in files)
        sensitivity = [{input_name: np.load(files[i])} for i in SENSITIVITY_FEEDS]
        options: dict[str, Any] = {}
        if args.method != "default":  # the bare calibrator (or the full keep-float search)
            options = {"method": args.method, "accuracy_target": None, "ranking": "full"}
        if args.keep_float or args.samples:
            options["sensitivity_data"] = sensitivity
        quantized, report = quantize_with_report(
            model, feeds, cache=None, target=args.target, keep_float=args.keep_float, **options
        )
        onnx.save(quantized, args.out)
        extra = {"kept_float": len(report.kept_float), "stages": report.seconds}
    elif args.tool == "optimize":
        graphopt.optimize(model)
        extra = {}
    elif args.tool == "fp32":
        sess = session(model)
        for f in files:
            sess.run(None, {input_name: np.load(f)})
        extra = {}
    else:

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.files = iter(files)

            def get_next(self):  # type: ignore[no-untyped-def]
                f = next(self.files, None)
                return None if f is None else {input_name: np.load(f)}

        with tempfile.TemporaryDirectory() as tmp:
            m13 = version_converter.convert_version(model, 13)  # as its users must
            src = os.path.join(tmp, "m13.onnx")
            onnx.save(m13, src)
            quantize_static(
                src,
                args.out,
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method={
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                }[args.method],
            )
        extra = {}
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mib(), "feeds": len(files), **extra}))


def peak_rss_mib() -> float:
    """This process's peak resident set: VmHWM, which starts afresh at exec. (`ru_maxrss`
    carries the forking parent's peak over exec: with the parent holding a model and its
    images, every tool measured the parent's 909 MiB.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB → MiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB


def spawn(**kw: object) -> dict:
    cmd = [sys.executable, __file__, "--worker"]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode < 0:
        return {"error": f"killed by signal {-done.returncode} (out of memory?)"}
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if "WARNING" not in ln]
        return {"error": (lines or ["exit code " + str(done.returncode)])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- measuring
def latency_ratio(fp32: str, int8: str, feed: dict, runs: int) -> tuple[float, float]:
    """(median INT8 / median FP32, FP32 median ms): 2 threads, ORT_ENABLE_ALL, interleaved
    with the order alternating (ABBA), so neither model always runs right behind the other."""
    from graphopt.backends.onnxruntime import session

    a, b = session(fp32, threads=2), session(int8, threads=2)
    for s in (a, b):
        s.run(None, feed)
    times: dict[Any, list[float]] = {a: [], b: []}
    for r in range(runs):
        for s in (a, b) if r % 2 == 0 else (b, a):
            t = time.perf_counter()
            s.run(None, feed)
            times[s].append(time.perf_counter() - t)
    ta, tb = times[a], times[b]
    return float(np.median(tb) / np.median(ta)), float(np.median(ta) * 1000)


def agreement(name: str, fp32_outputs: list, int8: str, evaluation: list[dict]) -> float:
    from graphopt.backends.onnxruntime import session
    from graphopt.quant.evaluate import box_match, mask_iou

    sess = session(int8)
    got = [sess.run(None, f)[0] for f in evaluation]
    if name == "common_det":
        return box_match(fp32_outputs, got)[0]
    return mask_iou(fp32_outputs, got)


def reference_size(name: str, fp32_outputs: list) -> str:
    from graphopt.quant.evaluate import detect_boxes

    if name == "common_det":
        return f"{sum(len(detect_boxes(o)) for o in fp32_outputs)} FP32 boxes"
    return f"{sum(int((o > 0.3).sum()) for o in fp32_outputs)} FP32 text pixels"


def configurations(name: str, keep_float: int | None) -> list[dict]:
    confs = [
        {"label": "ORT MinMax", "tool": "ort", "method": "minmax"},
        {
            "label": "ORT Percentile"
            + (f" ({ORT_PERCENTILE_FEEDS[name]} feeds)" if name == "ppocr_det" else ""),
            "tool": "ort",
            "method": "percentile",
            "limit": ORT_PERCENTILE_FEEDS[name],
        },
        {
            "label": f"ORT Entropy ({ORT_ENTROPY_FEEDS[name]} feeds)",
            "tool": "ort",
            "method": "entropy",
            "limit": ORT_ENTROPY_FEEDS[name],
        },
        {
            "label": "graphopt default (ort)",
            "tool": "ours",
            "method": "default",
            "target": "onnxruntime",
        },
        {
            "label": "graphopt default (ort), samples page+text",
            "tool": "ours",
            "method": "default",
            "target": "onnxruntime",
            "samples": 1,
        },
        {
            "label": "graphopt default (trt)",
            "tool": "ours",
            "method": "default",
            "target": "tensorrt",
        },
        {
            "label": "graphopt default (trt), samples page+text",
            "tool": "ours",
            "method": "default",
            "target": "tensorrt",
            "samples": 1,
        },
        {
            "label": "graphopt minmax (ort)",
            "tool": "ours",
            "method": "minmax",
            "target": "onnxruntime",
        },
        {
            "label": "graphopt entropy (ort)",
            "tool": "ours",
            "method": "entropy",
            "target": "onnxruntime",
        },
        {
            "label": "graphopt percentile (ort)",
            "tool": "ours",
            "method": "percentile",
            "target": "onnxruntime",
        },
        {
            "label": "graphopt entropy (trt)",
            "tool": "ours",
            "method": "entropy",
            "target": "tensorrt",
        },
        {
            "label": "graphopt minmax (trt)",
            "tool": "ours",
            "method": "minmax",
            "target": "tensorrt",
        },
    ]
    keep_float = KEEP_FLOAT[name] if keep_float is None else keep_float
    if keep_float:
        for method in ("minmax", "entropy"):
            confs.append(
                {
                    "label": f"graphopt {method} (ort) keep-float {keep_float}",
                    "tool": "ours",
                    "method": method,
                    "target": "onnxruntime",
                    "keep_float": keep_float,
                }
            )
    return confs


def bench(name: str, runs: int, keep_float: int | None, only: list[str] | None) -> list[str]:
    from graphopt.backends.onnxruntime import session
    from graphopt.realmodels import fetch_model

    model = str(fetch_model(name))
    calib, evaluation = split(name)
    ref = session(model)
    fp32_outputs = [ref.run(None, f)[0] for f in evaluation]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "calib"
        write_feeds(calib, folder)
        fp32 = spawn(tool="fp32", model=model, calib=folder, out="-", method="minmax")
        opt = spawn(tool="optimize", model=model, calib=folder, out="-", method="minmax")
        budget = 3 * (fp32["seconds"] + opt["seconds"])
        header = (
            f"\n{name}: {len(calib)} calibration feeds, {len(evaluation)} evaluation images "
            f"({reference_size(name, fp32_outputs)}); "
            f"FP32 inference over the calibration set {fp32['seconds']:.2f} s, optimize "
            f"{opt['seconds']:.2f} s → time budget 3×(sum) = {budget:.1f} s"
        )
        metric = "boxes matched" if name == "common_det" else "mask IoU"
        lines = [
            header,
            f"| configuration | calib s | × budget | peak RSS MiB | INT8/FP32 latency | {metric} |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for conf in configurations(name, keep_float):
            if only and not any(o in conf["label"] for o in only):
                continue
            out = Path(tmp) / f"{len(rows)}.onnx"
            kw = {
                "tool": conf["tool"],
                "model": model,
                "calib": folder,
                "out": out,
                "method": conf["method"],
                "target": conf.get("target", "onnxruntime"),
                "limit": conf.get("limit", 0),
                "keep_float": conf.get("keep_float", 0),
                "samples": conf.get("samples", 0),
            }
            res = spawn(**kw)
            if "error" in res:
                lines.append(f"| {conf['label']} | failed: {res['error'][:80]} | | | | |")
                rows.append(conf)
                continue
            try:
                acc = agreement(name, fp32_outputs, str(out), evaluation)
                if conf.get("target") == "tensorrt":
                    lat = "n/a (TensorRT layout)"
                else:
                    ratio, base_ms = latency_ratio(model, str(out), evaluation[0], runs)
                    lat = f"{ratio:.2f}× (FP32 {base_ms:.0f} ms)"
            except Exception as e:  # onnxruntime cannot load or run this INT8 model: its row
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                lines.append(f"| {conf['label']} | failed: onnxruntime: {first[:80]} | | | | |")
                print(lines[-1], flush=True)
                rows.append(conf)
                continue
            label = conf["label"]
            if conf["tool"] == "ours" and res.get("kept_float"):
                label += f" [{res['kept_float']} groups float]"
            lines.append(
                f"| {label} | {res['seconds']:.2f} | {res['seconds'] / budget:.2f} | "
                f"{res['rss_mb']:.0f} | {lat} | {acc:.3f} |"
            )
            rows.append(conf)
            print(lines[-1], flush=True)
            if res.get("stages"):  # in-process stages of graphopt rows (stdout only)
                stages = ", ".join(f"{k} {v:.2f} s" for k, v in res["stages"].items())
                print(
                    f"  stages: {stages}; the rest (imports, checker, save) "
                    f"{res['seconds'] - sum(res['stages'].values()):.2f} s",
                    flush=True,
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["common_det", "ppocr_det"])
    parser.add_argument("--runs", type=int, default=20, help="latency runs per model (median)")
    parser.add_argument(
        "--keep-float",
        type=int,
        default=None,
        help="groups kept float in the keep-float configuration (default: none on common_det, "
        "8 on ppocr_det; 0 skips it)",
    )
    parser.add_argument("--only", nargs="*", help="run only configurations whose label has this")
    parser.add_argument("--markdown", help="also write the tables (markdown) to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for flag in ("tool", "model", "calib", "out", "method", "target"):
        parser.add_argument(f"--{flag}", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=0, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.worker:
        args.keep_float = int(args.keep_float or 0)
        worker(args)
        return
    lines: list[str] = []
    for name in args.models:
        lines += bench(name, args.runs, args.keep_float, args.only)
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines).lstrip() + "\n")


if __name__ == "__main__":
    main()
