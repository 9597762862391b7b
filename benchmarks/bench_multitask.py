"""Merged multi-task model vs running the task models one after another (onnxruntime CPU).

Task sets built from the real detectors (real photographs as inputs):

- `layout-heads`: layout_cdla cut into a classification-score model and a box-regression model
  (`graphopt.split` at different outputs), merged back: the backbone is shared.
- `layout-tuned`: layout_cdla and a copy whose first score-head conv is "fine-tuned" (weights
  × 1.01): everything but that head is shared.
- `layout-3`: the two cut models plus the fine-tuned one (three tasks).
- `det+ocr`: common_det and PP-OCRv4 det, which share nothing (merge only places them side by
  side: the figure shows the merge costs nothing).

Per set: sequential = run every task session once, in order; merged = run the merged session
once. Both with 2 intra-op threads, warmed up, rounds interleaved (ABBA), median of `--rounds`
(≥ 20). Prints a markdown table with the sharing report and the latency ratio.

    python benchmarks/bench_multitask.py [--sets layout-heads det+ocr] [--rounds 20] [--out F.json]
    python -m pytest benchmarks/bench_multitask.py --benchmark-enable

No test here asserts on time.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

SETS = ("layout-heads", "layout-tuned", "layout-3", "det+ocr")
THREADS = 2


def perturb_first_head(model: onnx.ModelProto, factor: float = 1.01) -> onnx.ModelProto:
    """A copy of `model` whose conv feeding the first output has weights × `factor`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    producer = {o: n for n in out.graph.node for o in n.output}
    t = out.graph.output[0].name
    while producer[t].op_type != "Conv":
        t = producer[t].input[0]
    weight = producer[t].input[1]
    inits = {i.name: i for i in out.graph.initializer}
    tensor = inits[weight] if weight in inits else producer[weight].attribute[0].t
    w = numpy_helper.to_array(tensor)
    tensor.CopyFrom(numpy_helper.from_array((w * factor).astype(w.dtype), tensor.name))
    return out


def build_set(name: str) -> tuple[list[onnx.ModelProto], list[str], dict[str, np.ndarray]]:
    """The task models, their prefixes and one merged feed (real photograph)."""
    from graphopt import split
    from graphopt.realmodels import fetch_model, model_inputs

    if name == "det+ocr":
        det = onnx.load(str(fetch_model("common_det")))
        ocr = onnx.load(str(fetch_model("ppocr_det")))
        feed = {**model_inputs("common_det", 1)[0], **model_inputs("ppocr_det", 1)[0]}
        return [det, ocr], ["det_", "ocr_"], feed
    layout = onnx.load(str(fetch_model("layout_cdla")))
    outs = [o.name for o in layout.graph.output]
    feed = model_inputs("layout_cdla", 1)[0]
    cls, box = split(layout, outs[:4]), split(layout, outs[4:])
    if name == "layout-heads":
        return [cls, box], ["cls_", "box_"], feed
    if name == "layout-tuned":
        return [layout, perturb_first_head(layout)], ["base_", "tuned_"], feed
    if name == "layout-3":
        return [cls, box, perturb_first_head(cls)], ["cls_", "box_", "tuned_"], feed
    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def _feed_for(sess: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {i.name: feed[i.name] for i in sess.get_inputs()}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, rounds: int = 20, warmup: int = 3) -> dict[str, Any]:
    from graphopt.backends.onnxruntime import session
    from graphopt.multitask import merge_with_report

    models, prefixes, feed = build_set(name)
    shapes = {k: list(v.shape) for k, v in feed.items()}  # for the MAC estimate of dynamic inputs
    merged, report = merge_with_report(models, prefixes=prefixes, macs_input_shapes=shapes)
    task_sessions = [session(m, threads=THREADS) for m in models]
    merged_session = session(merged, threads=THREADS)
    task_feeds = [_feed_for(s, feed) for s in task_sessions]
    merged_feed = _feed_for(merged_session, feed)

    def sequential() -> None:
        for s, f in zip(task_sessions, task_feeds, strict=True):
            s.run(None, f)

    def together() -> None:
        merged_session.run(None, merged_feed)

    for _ in range(warmup):
        sequential()
        together()
    seq, mer = [], []
    gc.disable()
    try:
        for r in range(rounds):
            if r % 2 == 0:
                seq.append(_timed(sequential))
                mer.append(_timed(together))
            else:
                mer.append(_timed(together))
                seq.append(_timed(sequential))
    finally:
        gc.enable()
    seq_ms, mer_ms = statistics.median(seq) * 1e3, statistics.median(mer) * 1e3
    return {
        "set": name,
        "tasks": len(models),
        "rounds": rounds,
        "sequential_median_ms": seq_ms,
        "merged_median_ms": mer_ms,
        "speedup": seq_ms / mer_ms,
        "paired_ratio_median": statistics.median(s / m for s, m in zip(seq, mer, strict=True)),
        "nodes_separate": report.nodes_separate,
        "nodes_merged": report.nodes_merged,
        "shared_nodes": report.shared_nodes,
        "params_separate": report.params_separate,
        "params_merged": report.params_merged,
        "shared_params": report.shared_params,
        "gmacs_separate": report.macs_separate / 1e9,
        "gmacs_merged": report.macs_merged / 1e9,
        "macs_unknown_nodes": report.macs_unknown,
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| set | tasks | nodes sep → merged (shared) | params sep → merged | GMACs sep → merged "
        "| sequential ms | merged ms | speedup |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        macs = f"{r['gmacs_separate']:.2f} → {r['gmacs_merged']:.2f}"
        if r["macs_unknown_nodes"]:
            macs += f" (+{r['macs_unknown_nodes']} dynamic)"
        lines.append(
            f"| {r['set']} | {r['tasks']} | {r['nodes_separate']} → {r['nodes_merged']} "
            f"({r['shared_nodes']}) | {r['params_separate'] / 1e6:.2f}M → "
            f"{r['params_merged'] / 1e6:.2f}M | {macs} | {r['sequential_median_ms']:.1f} | "
            f"{r['merged_median_ms']:.1f} | {r['speedup']:.2f}× |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 20:
        print("note: fewer than 20 rounds; medians are noisy", file=sys.stderr)
    rows = []
    for name in args.sets:
        rows.append(measure(name, args.rounds))
        print(f"{name}: done", file=sys.stderr)
    print(table(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


# ---------------------------------------------------------------- pytest-benchmark suite


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["layout-heads", "det+ocr"])
def test_merged_vs_sequential(benchmark: Any, name: str) -> None:
    """One benchmark round = the full interleaved measurement; figures go to extra_info."""
    result: dict[str, Any] = {}

    def once() -> None:
        result.update(measure(name, rounds=20, warmup=2))

    benchmark.group = "multitask merged vs sequential"
    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result["nodes_merged"] <= result["nodes_separate"]


if __name__ == "__main__":
    sys.exit(main())
