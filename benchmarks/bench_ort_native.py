"""Issue 4: graphopt's onnxruntime output at ORT_DISABLE_ALL vs the original at ORT_ENABLE_ALL.

Per real detector, four CPU sessions on the same real-photograph input, 2 intra-op threads:
the original model at ORT_ENABLE_ALL (onnxruntime's own optimizer, NchwcTransformer included),
and at ORT_DISABLE_ALL the `ort-fusions` output (NCHW), the `ort-cpu` output (the NCHWc graph
behind a block-size guard, NCHW fallback) and the `ort-cpu-native` output (the NCHWc graph
alone). Runs are interleaved round by round (the order rotates every round) because the
machine is shared and noisy; we report medians and the ratio to the original at ENABLE_ALL.
Issue 4's goal: ratio ≤ 1.10.

    python benchmarks/bench_ort_native.py [--models ...] [--runs 25] [--threads 2]

No test here asserts on time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import onnx

MODEL_NAMES = ("common_det", "layout_cdla", "ppocr_det")
GOAL_RATIO = 1.10


def sessions(name: str, threads: int) -> dict[str, Any]:
    import graphopt
    from graphopt.backends.onnxruntime import session
    from graphopt.realmodels import fetch_model

    original = onnx.load(str(fetch_model(name)))
    return {
        "original @ENABLE_ALL": session(original, threads=threads, level="all"),
        "ort-fusions @DISABLE_ALL": session(
            graphopt.optimize(original, "ort-fusions"), threads=threads, level="disable"
        ),
        "ort-cpu @DISABLE_ALL": session(
            graphopt.optimize(original, "ort-cpu"), threads=threads, level="disable"
        ),
        "ort-cpu-native @DISABLE_ALL": session(
            graphopt.optimize(original, "ort-cpu-native"), threads=threads, level="disable"
        ),
    }


def measure(name: str, runs: int, threads: int, warmup: int = 3) -> dict[str, list[float]]:
    """Milliseconds per session and round, interleaved round by round."""
    from graphopt.realmodels import model_inputs

    feeds = model_inputs(name, 1)[0]
    sess = sessions(name, threads)
    labels = list(sess)
    for label in labels:
        for _ in range(warmup):
            sess[label].run(None, feeds)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(runs):
        for k in range(len(labels)):
            label = labels[(r + k) % len(labels)]
            start = time.perf_counter()
            sess[label].run(None, feeds)
            times[label].append((time.perf_counter() - start) * 1e3)
    return times


def spread(ours: list[float], base: list[float]) -> str:
    """Quartiles of the per-round (paired) ratios ours / base."""
    ratios = sorted(o / b for o, b in zip(ours, base, strict=True))
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{q1:.2f}–{q3:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODEL_NAMES))
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(
        f"| model | session | median ms | ratio of medians to original @ENABLE_ALL "
        f"(goal ≤ {GOAL_RATIO}) | paired ratio, quartiles |"
    )
    print("|---|---|---|---|---|")
    for name in args.models:
        times = measure(name, args.runs, args.threads)
        base = times["original @ENABLE_ALL"]
        for label, ms in times.items():
            ratio = statistics.median(ms) / statistics.median(base)
            print(
                f"| {name} | {label} | {statistics.median(ms):.1f} | {ratio:.2f} "
                f"| {spread(ms, base)} |"
            )


if __name__ == "__main__":
    main()
