"""Render the benchmark JSON files into a markdown table and a bar chart PNG.

Reads `benchmarks/results/peers.json` (from `compare_peers.py`) and, when present,
`benchmarks/results/optimize_time.json` (from `bench_optimize.py --out`), writes
`benchmarks/results/results.md` and `benchmarks/results/peers.png`, and prints the markdown.
With `--readme README.md` it also rewrites the README's summary table (and its chart link)
between the `<!-- results-table -->` markers from `peers.json`, nothing else of the file.

    python benchmarks/render_results.py [--peers FILE] [--optimize FILE] [--out-dir DIR]
                                        [--readme README.md]

Only renders: it measures nothing.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
LEVEL_NAMES = {"all": "ORT_ENABLE_ALL", "disable": "ORT_DISABLE_ALL"}

Cell = Callable[[dict[str, Any]], str]


def _tools(peers: dict[str, Any]) -> list[str]:
    """Tools in the order they were run, across all models."""
    seen: list[str] = []
    for model in peers["models"].values():
        for tool in model["tools"]:
            if tool not in seen:
                seen.append(tool)
    return seen


def _table(peers: dict[str, Any], cell: Cell, corner: str = "tool") -> list[str]:
    models = list(peers["models"])
    lines = [
        f"| {corner} | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for tool in _tools(peers):
        cells = []
        for m in models:
            row = peers["models"][m]["tools"].get(tool)
            cells.append("—" if row is None else cell(row))
        lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    return lines


def _nodes(row: dict[str, Any]) -> str:
    if "error" in row:
        return row["error"]
    return str(row["nodes"]["non_constant"])


def _optimize(row: dict[str, Any]) -> str:
    if "error" in row:
        return row["error"]
    s = row.get("optimize")
    if not s:
        return "—"
    return (
        f"{s['tool_median_s'] * 1e3:.0f} ms = {s['ratio']:.2f}× "
        f"({s['ratio_min']:.1f}–{s['ratio_max']:.1f})"
    )


def _latency(level: str) -> Cell:
    def cell(row: dict[str, Any]) -> str:
        if "error" in row:
            return row["error"]
        lat = row.get("latency", {}).get(level)
        if lat is None:
            return "—"
        if "error" in lat:
            return lat["error"]
        return f"{lat['ratio']:.3f} ({lat['ratio_p25']:.2f}–{lat['ratio_p75']:.2f})"

    return cell


def _latency_ms(row: dict[str, Any]) -> str:
    if "error" in row:
        return "failed"
    parts = []
    for level in ("all", "disable"):
        lat = row.get("latency", {}).get(level, {})
        parts.append(
            f"{lat['median_ms']:.0f}" if "median_ms" in lat else "failed" if "error" in lat else "—"
        )
    return " / ".join(parts)


def _diff(row: dict[str, Any]) -> str:
    if "error" in row:
        return "failed"
    d, lat = row.get("max_diff", {}), row.get("latency", {})
    return " / ".join(
        f"{d[k]:.1e}" if k in d else "failed" if "error" in lat.get(k, {}) else "—"
        for k in ("disable", "all")
    )


def optimize_time_table(bench: dict[str, Any]) -> list[str]:
    lines = [
        "| model | pipeline | floor (ms) | `optimize` alone (ms) | ratio | optimize + save (ms) | ratio to floor | paired min–max | non-Constant nodes before → after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in bench["rows"]:
        s = r["summary"]
        alone = "— | —"  # files written before bench_optimize timed optimize alone
        if s.get("part_median_s") is not None:
            alone = f"{s['part_median_s'] * 1e3:.1f} | {s['part_ratio']:.2f}×"
        lines.append(
            f"| {r['model']} | {r['pipeline']} | {s['floor_median_s'] * 1e3:.1f} | {alone} | "
            f"{s['tool_median_s'] * 1e3:.1f} | **{s['ratio']:.2f}×** | "
            f"{s['ratio_min']:.2f}–{s['ratio_max']:.2f} | {r['nodes_before']} → {r['nodes_after']} |"
        )
    return lines


def machine_line(machine: dict[str, Any]) -> str:
    v = machine.get("versions", {})
    load = machine.get("loadavg_1m_start")
    load_text = f"load average {load:.1f} → {machine['loadavg_1m']:.1f}" if load is not None else ""
    return (
        f"Measured {machine['date_utc']} on a **shared {machine['cpu_count']}-core machine** "
        f"({machine['cpu']}, "
        f"{machine['cpu_count']} CPUs{', ' + load_text if load_text else ''}; other jobs were "
        f"running), graphopt {v.get('graphopt')} @ {machine.get('git_commit') or '?'}, "
        f"onnxruntime {v.get('onnxruntime')}, onnx {v.get('onnx')}, onnxsim {v.get('onnxsim')}, "
        f"onnxslim {v.get('onnxslim')}, onnxoptimizer {v.get('onnxoptimizer')}."
    )


def render_markdown(peers: dict[str, Any] | None, bench: dict[str, Any] | None) -> str:
    out: list[str] = []
    if bench is not None:
        out += [
            "### Optimize time vs the load + serialize + write floor",
            "",
            machine_line(bench["machine"]),
            "Median of interleaved rounds (floor and optimize alternate); the goal is ≤ 3×.",
            "",
            *optimize_time_table(bench),
            "",
        ]
        for key, breakdown in bench.get("per_pass_seconds", {}).items():
            out += [
                f"Where the time goes, {key}: `optimize_with_report` (load, passes, commit; "
                "saving not included), median ms:",
                "",
            ]
            out += ["| pass | ms |", "|---|---:|"]
            out += [f"| {name} | {sec * 1e3:.1f} |" for name, sec in list(breakdown.items())[:8]]
            out.append("")
    if peers is not None:
        st = peers["settings"]
        out += [
            "### graphopt vs onnxsim, onnxslim, onnxoptimizer and onnxruntime's offline optimizer",
            "",
            machine_line(peers["machine"]),
            f"Latency: onnxruntime CPU, {st['intra_op_threads']} intra-op threads, "
            f"{st['latency_runs']} rounds; in each round every output model runs once at each "
            "level, in a rotating order, on the same real image, each run back to back with "
            "the original model at ORT_ENABLE_ALL and each timed run right after an untimed "
            "run of the same session (hot); a ratio is the median of those pairs' "
            "ratios (p25–p75 in brackets; below 1 is faster). Expect a few percent of noise "
            "between runs. The `graphopt:ort-*` and `ort:extended` outputs contain "
            "onnxruntime-only `com.microsoft` ops; ort-cpu-native's NCHWc layout is also "
            "specific to this CPU's vector width, ort-cpu holds it behind a block-size guard "
            "with an NCHW fallback (nodes: the guard and the NCHWc graph that runs); the others "
            "are standard ONNX.",
            "",
            "**Non-Constant nodes**",
            "",
            *_table(peers, _nodes),
            "",
            "**Latency at ORT_ENABLE_ALL, ratio to the original at ORT_ENABLE_ALL**",
            "",
            *_table(peers, _latency("all")),
            "",
            "**Latency at ORT_DISABLE_ALL, ratio to the original at ORT_ENABLE_ALL** "
            "(what a runtime without its own graph optimizer gets)",
            "",
            *_table(peers, _latency("disable")),
            "",
            "**Median latency in ms, ORT_ENABLE_ALL / ORT_DISABLE_ALL**",
            "",
            *_table(peers, _latency_ms),
            "",
            f"**Optimize time** (path → file, median of {st['optimize_runs']} rounds "
            "interleaved with the load + serialize + write floor; × floor, paired min–max)",
            "",
            *_table(peers, _optimize),
            "",
            "**Max output difference** vs the original at ORT_DISABLE_ALL: per output, "
            f"max |a−b| / max |a| over {st['images']} real images, the largest over the "
            "outputs (each output scaled by its own range); the tool's output at "
            "ORT_DISABLE_ALL / ORT_ENABLE_ALL",
            "",
            *_table(peers, _diff),
            "",
        ]
    return "\n".join(out)


def tool_colors(n: int) -> list[tuple[float, ...]]:
    """`n` distinct bar colours: tab10's up to 10 tools, tab20's up to 20, else evenly spaced
    hues (tab10 cycled: the eleventh tool, ort:extended, had the original's blue)."""
    import matplotlib

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        # the dark shades first, then the light ones: neighbours in the legend stay apart
        return [matplotlib.colormaps["tab20"]((2 * i) % 20 + (2 * i) // 20) for i in range(n)]
    return [matplotlib.colormaps["hsv"](i / n) for i in range(n)]


def render_chart(peers: dict[str, Any], path: Path) -> Path:
    """Grouped bars per model: latency ratios at both levels, and non-Constant node counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(peers["models"])
    tools = _tools(peers)
    fig, axes = plt.subplots(3, 1, figsize=(11, 12), constrained_layout=True)
    width = 0.8 / max(1, len(tools))
    colors = tool_colors(len(tools))

    def values(tool: str, get: Callable[[dict[str, Any]], float | None]) -> list[float]:
        vals = []
        for m in models:
            row = peers["models"][m]["tools"].get(tool)
            v = None if row is None or "error" in row else get(row)
            vals.append(math.nan if v is None else v)
        return vals

    def mark_failed(ax: Any, xs: list[float], tool: str, level: str | None) -> None:
        """Write "failed" where the tables do (the tool, or its session at `level`, failed):
        a missing bar alone reads as "not measured"."""
        for x, m in zip(xs, models, strict=True):
            row = peers["models"][m]["tools"].get(tool)
            if row is None:
                continue
            entry = row.get("latency", {}).get(level, {}) if level else {}
            if "error" in row or "error" in entry:
                ax.text(
                    x,
                    0.02,
                    "failed",
                    transform=ax.get_xaxis_transform(),
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=colors[tools.index(tool)],
                )

    def lat(level: str, key: str) -> Callable[[dict[str, Any]], float | None]:
        def get(row: dict[str, Any]) -> float | None:
            entry = row.get("latency", {}).get(level, {})
            return entry.get(key)

        return get

    for ax, level in zip(axes[:2], ("all", "disable"), strict=True):
        for i, tool in enumerate(tools):
            xs = [j + (i - (len(tools) - 1) / 2) * width for j in range(len(models))]
            mid = values(tool, lat(level, "ratio"))
            lo = values(tool, lat(level, "ratio_p25"))
            hi = values(tool, lat(level, "ratio_p75"))
            err = [
                [max(0.0, m - a) for m, a in zip(mid, lo, strict=True)],
                [max(0.0, b - m) for m, b in zip(mid, hi, strict=True)],
            ]
            ax.bar(xs, mid, width, yerr=err, capsize=2, label=tool, color=colors[i])
            mark_failed(ax, xs, tool, level)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(models)), models)
        ax.set_ylabel("latency / original @ ENABLE_ALL")
        ax.set_title(f"onnxruntime CPU latency at {LEVEL_NAMES[level]} (median, p25–p75)")
        # bars start at 0: a bar's length is its ratio (an axis starting at 0.3 drew 0.45 as
        # a fifth of the original's 1.0)
        ax.set_ylim(bottom=0.0)
    ax = axes[2]
    for i, tool in enumerate(tools):
        xs = [j + (i - (len(tools) - 1) / 2) * width for j in range(len(models))]
        ax.bar(
            xs,
            values(tool, lambda row: row["nodes"]["non_constant"]),
            width,
            label=tool,
            color=colors[i],
        )
        mark_failed(ax, xs, tool, None)
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel("non-Constant nodes")
    ax.set_title("Graph size after each tool")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(5, len(tools)), fontsize=9)
    cores = peers["machine"]["cpu_count"]
    fig.suptitle(f"graphopt vs peers (shared {cores}-core machine; see results.md)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# The README's summary table: these tools in this order, under these labels (ort:basic is in
# results.md only).
README_TOOLS = {
    "original": "original",
    "graphopt:default": "graphopt `default`",
    "graphopt:tensorrt": "graphopt `tensorrt`",
    "graphopt:ort-fusions": "graphopt `ort-fusions`",
    "graphopt:ort-cpu": "graphopt `ort-cpu`",
    "graphopt:ort-cpu-native": "graphopt `ort-cpu-native`",
    "onnxsim": "onnxsim",
    "onnxslim": "onnxslim",
    "onnxoptimizer": "onnxoptimizer",
    "ort:extended": "onnxruntime EXTENDED (offline)",
}
README_BEGIN = (
    "<!-- results-table: rendered from benchmarks/results/peers.json by "
    "`python benchmarks/render_results.py --readme README.md`; do not edit by hand -->"
)
README_END = "<!-- /results-table -->"
_NCHWC_NOTE = (
    "³ The NCHWc graph that runs (plus the 4 guard nodes); the NCHW fallback branch holds the\n"
    "`ort-fusions` graph. Counts for a CPU of NCHWc block 16 (AVX-512), as measured; an AVX2\n"
    "CPU's block of 8 gives 205 / 155 / 168 (`ort-cpu-native` 201 / 151 / 164)."
)


def _per_model(peers: dict[str, Any], tool: str, cell: Callable[[dict[str, Any]], str]) -> str:
    """One cell of the README table: `cell` of each model's row, joined by " / "; "failed"
    where the tool failed on that model (its reason is in results.md), "—" where it did not
    run."""
    cells = []
    for model in peers["models"].values():
        row = model["tools"].get(tool)
        cells.append("—" if row is None else "failed" if "error" in row else cell(row))
    return " / ".join(cells)


def _ratio(level: str) -> Callable[[dict[str, Any]], str]:
    def cell(row: dict[str, Any]) -> str:
        lat = row.get("latency", {}).get(level)
        if lat is None:
            return "—"
        if "error" in lat:
            return "failed"
        return "1" if lat["ratio"] == 1.0 and level == "all" else f"{lat['ratio']:.2f}"

    return cell


def _times_floor(row: dict[str, Any]) -> str:
    s = row.get("optimize")
    if not s:
        return "—"
    return f"{s['ratio']:.0f}" if s["ratio"] >= 10 else f"{s['ratio']:.1f}"


def readme_block(peers: dict[str, Any]) -> str:
    """The README's summary table, its footnote and chart link, between the two markers."""
    models = " / ".join(peers["models"])
    lines = [
        README_BEGIN,
        "",
        f"| tool | non-Constant nodes ({models}) | latency @ENABLE_ALL | latency @DISABLE_ALL | "
        "optimize time × load+save floor |",
        "|---|---|---|---|---|",
    ]
    present = set(_tools(peers))
    for tool, label in README_TOOLS.items():
        if tool not in present:
            continue
        nodes = _per_model(peers, tool, lambda r: str(r["nodes"]["non_constant"]))
        if tool == "graphopt:ort-cpu":
            nodes += " ³"
        optimize = "—" if tool == "original" else _per_model(peers, tool, _times_floor)
        lines.append(
            f"| {label} | {nodes} | {_per_model(peers, tool, _ratio('all'))} | "
            f"{_per_model(peers, tool, _ratio('disable'))} | {optimize} |"
        )
    lines += [
        "",
        _NCHWC_NOTE,
        "",
        "![Latency ratios and node counts per tool and model](benchmarks/results/peers.png)",
        "",
        README_END,
    ]
    return "\n".join(lines)


def rewrite_readme(path: Path, peers: dict[str, Any]) -> bool:
    """Replace the block between the markers in `path` with `readme_block(peers)`, through a
    temporary file renamed into place (`write_atomically`, as graphopt writes its models);
    False (nothing written) where the markers are missing."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return False
    new = text[:start] + readme_block(peers) + text[end + len(README_END) :]
    if new == text:
        return True
    from graphopt.ir.model_io import write_atomically

    write_atomically(path, path.parent, new.encode("utf-8"))
    return True


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", default=str(RESULTS / "peers.json"))
    p.add_argument("--optimize", default=str(RESULTS / "optimize_time.json"))
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument(
        "--readme",
        metavar="README.md",
        help="also rewrite this file's summary table between its results-table markers",
    )
    args = p.parse_args(argv)
    peers, bench = _read(Path(args.peers)), _read(Path(args.optimize))
    if peers is None and bench is None:
        p.error(f"neither {args.peers} nor {args.optimize} exists: run the benchmarks first")
    if args.readme and peers is None:
        p.error(f"--readme needs {args.peers}: run compare_peers.py first")
    if args.readme and not rewrite_readme(Path(args.readme), peers):
        p.error(f"{args.readme} has no {README_BEGIN[:20]}… {README_END} block")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = render_markdown(peers, bench)
    (out_dir / "results.md").write_text(text + "\n")
    if peers is not None:
        render_chart(peers, out_dir / "peers.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
