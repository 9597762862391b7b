"""The benchmark code in benchmarks/ still runs: one comparison on a tiny model built here.

Asserts on node counts, finite positive ratios, failure reporting and the rendered table;
never on how long anything took. The feeds are seeded values: this checks the harness, not
numerical accuracy (the real-image comparisons live in the benchmark itself).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_optimize  # noqa: E402 - benchmarks/ is a folder of scripts, not a package
import compare_peers  # noqa: E402
import render_results  # noqa: E402


def _tiny_model() -> onnx.ModelProto:
    """x → Conv → BatchNormalization → Relu → Identity → Reshape(to its own shape) → y."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "var"),
    ]
    shape = numpy_helper.from_array(np.array([1, 4, 8, 8], np.int64))
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["b"], name="bn"
        ),
        helper.make_node("Relu", ["b"], ["r"], name="relu"),
        helper.make_node("Identity", ["r"], ["i"], name="identity"),
        helper.make_node("Constant", [], ["shape"], name="shape_const", value=shape),
        helper.make_node("Reshape", ["i", "shape"], ["y"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


TINY_NON_CONSTANT = 5  # Conv, BatchNormalization, Relu, Identity, Reshape


def _boom(src: Path, dst: Path) -> None:
    raise RuntimeError("boom\nsecond line that must not appear")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, np.ndarray]]]:
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(_tiny_model(), str(path))
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(2)]
    return path, feeds


@pytest.fixture(scope="module")
def comparison(tiny: tuple[Path, list[dict[str, np.ndarray]]], tmp_path_factory) -> dict:
    path, feeds = tiny
    tools = compare_peers.all_tools()
    chosen = {k: tools[k] for k in ("original", "graphopt:default", "onnxoptimizer", "ort:basic")}
    chosen["boom"] = _boom
    settings = compare_peers.Settings(runs=3, opt_runs=1, images=2, isolate=False)
    workdir = tmp_path_factory.mktemp("work")
    return compare_peers.compare_model("tiny", path, feeds, workdir, chosen, settings)


def test_compare_model_counts_nodes_and_reports_failures(comparison: dict) -> None:
    rows = comparison["tools"]
    assert rows["original"]["nodes"]["non_constant"] == TINY_NON_CONSTANT
    assert rows["original"]["nodes"]["constant"] == 1
    assert rows["original"]["nodes"]["ops"]["BatchNormalization"] == 1
    assert rows["graphopt:default"]["nodes"]["non_constant"] <= TINY_NON_CONSTANT
    # onnxruntime's BASIC level folds the BN into the Conv and drops the Identity.
    assert rows["ort:basic"]["nodes"]["non_constant"] < TINY_NON_CONSTANT
    assert "BatchNormalization" not in rows["ort:basic"]["nodes"]["ops"]
    assert rows["boom"] == {"error": "failed: RuntimeError: boom"}
    assert comparison["input_shapes"] == {"x": [1, 3, 8, 8]}


def test_compare_model_ratios_are_finite_and_diffs_small(comparison: dict) -> None:
    pytest.importorskip("onnxoptimizer", reason="a [dev] peer; its rows are part of the count")
    rows = comparison["tools"]
    assert rows["original"]["latency"]["all"]["ratio"] == 1.0  # paired with itself
    for tool in ("original", "graphopt:default", "onnxoptimizer", "ort:basic"):
        for level in ("all", "disable"):
            lat = rows[tool]["latency"][level]
            assert len(lat["times_ms"]) == (3 * 7 if (tool, level) == ("original", "all") else 3)
            assert math.isfinite(lat["ratio"]) and lat["ratio"] > 0
            assert lat["ratio_p25"] <= lat["ratio_p75"]
            assert rows[tool]["max_diff"][level] < 1e-4
        if tool != "original":
            opt = rows[tool]["optimize"]
            assert opt["runs"] == 1
            assert math.isfinite(opt["ratio"]) and opt["ratio"] > 0


def test_render_markdown_and_chart(comparison: dict, tmp_path: Path) -> None:
    peers = {
        "machine": bench_optimize.machine_info(),
        "settings": {"intra_op_threads": 2, "latency_runs": 3, "optimize_runs": 1, "images": 2},
        "models": {"tiny": comparison},
    }
    text = render_results.render_markdown(peers, None)
    assert "| boom | failed: RuntimeError: boom |" in text
    assert f"| original | {TINY_NON_CONSTANT} |" in text
    assert f"shared {peers['machine']['cpu_count']}-core machine" in text  # this machine's
    png = render_results.render_chart(peers, tmp_path / "peers.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_isolated_worker_runs_a_tool_and_reports_an_unknown_one(
    tiny: tuple[Path, list[dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    path, _ = tiny
    ok = compare_peers.run_tool(
        "ort:basic", None, path, tmp_path / "basic.onnx", 1, isolate=True, timeout=300
    )
    assert ok["optimize"]["ratio"] > 0
    assert (tmp_path / "basic.onnx").is_file()
    bad = compare_peers.run_tool(
        "no-such-tool", None, path, tmp_path / "x.onnx", 1, isolate=True, timeout=300
    )
    assert bad["error"].startswith("failed: ")


def test_optimize_time_benchmark_on_tiny_model(
    tiny: tuple[Path, list[dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    path, _ = tiny
    row = bench_optimize.measure_model("tiny", path, tmp_path, runs=2)
    s = row.summary
    assert row.nodes_before == TINY_NON_CONSTANT and row.nodes_after <= TINY_NON_CONSTANT
    assert s["runs"] == 2 and len(s["floor_s"]) == 2
    assert math.isfinite(s["ratio"]) and s["ratio"] > 0
    assert s["ratio_min"] <= s["ratio_paired_median"] <= s["ratio_max"]
    # `optimize` alone (save left out) is timed inside each end-to-end round
    assert len(s["part_s"]) == 2
    assert all(0 < p < t for p, t in zip(s["part_s"], s["tool_s"], strict=True))
    assert s["part_ratio"] == s["part_median_s"] / s["floor_median_s"]
    table = bench_optimize.format_table([row])
    assert "| tiny | default |" in table and f"{s['part_ratio']:.2f}×" in table


def test_max_rel_diff_scales_by_the_output_range_over_all_images() -> None:
    ref = [[np.array([1.0, 0.5], np.float32)], [np.array([2e-7, 0.0], np.float32)]]
    got = [[np.array([1.0, 0.5], np.float32)], [np.array([0.0, 1e-7], np.float32)]]
    # scaled per image, the second feed alone would give 2e-7 / 2e-7 = 1; over both images
    # the output's range is 1.0
    assert compare_peers.max_rel_diff(ref, got) == pytest.approx(2e-7, rel=1e-3)
    bigger = [[np.array([1.0, 0.5], np.float32)], [np.array([0.0, 0.0, 0.0], np.float32)]]
    assert compare_peers.max_rel_diff(ref, bigger) == math.inf


def test_pass_breakdown_accounts_for_the_total(
    tiny: tuple[Path, list[dict[str, np.ndarray]]],
) -> None:
    path, _ = tiny
    breakdown = bench_optimize.pass_breakdown(path, runs=1)
    assert next(iter(breakdown)) == "(total)"  # sorted, largest first
    parts = sum(v for k, v in breakdown.items() if k != "(total)")
    assert parts == pytest.approx(breakdown["(total)"], rel=1e-6)


def test_dump_json_rounds_and_keeps_number_lists_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    bench_optimize.dump_json({"a": {"t": [1.0 / 3, 2.5e-7, 3]}, "name": "x"}, path)
    text = path.read_text()
    assert '"t": [0.333333, 2.5e-07, 3]' in text
    assert json.loads(text) == {"a": {"t": [0.333333, 2.5e-07, 3]}, "name": "x"}


class _RecordingSession:
    """Stands in for an InferenceSession: records which session ran, in order."""

    def __init__(self, name: str, log: list[str]):
        self.name, self.log = name, log

    def run(self, outputs: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.log.append(self.name)
        return []


def test_paired_latency_times_hot_runs_back_to_back_with_the_reference() -> None:
    log: list[str] = []
    names = ["ref", "a", "b", "c"]
    sessions = {(n, "all"): _RecordingSession(n, log) for n in names}
    feeds = [{"x": np.zeros(1, np.float32)}]
    times, ratios = compare_peers.paired_latency(sessions, ("ref", "all"), feeds, 4, warmup=0)
    # every timed run directly follows an untimed run of the same session
    pairs = [log[i : i + 2] for i in range(0, len(log), 2)]
    assert all(p[0] == p[1] for p in pairs)
    visited = [p[0] for p in pairs]
    # each visit of another session is paired with a reference run, adjacent to it
    for i in range(0, len(visited), 2):
        assert visited[i : i + 2].count("ref") == 1
    assert visited.count("ref") == 4 * 3
    assert all(len(times[(n, "all")]) == 4 for n in ("a", "b", "c"))
    assert len(times[("ref", "all")]) == 12 and ratios[("ref", "all")] == [1.0] * 4
    assert all(r > 0 for n in ("a", "b", "c") for r in ratios[(n, "all")])


def test_quantize_latency_ratio_alternates_which_model_runs_first(monkeypatch) -> None:
    """A fixed FP32-then-INT8 order would time INT8 always right behind FP32 (order bias)."""
    import bench_quantize

    import graphopt.backends.onnxruntime as ort_backend

    log: list[str] = []
    monkeypatch.setattr(ort_backend, "session", lambda path, threads: _RecordingSession(path, log))
    ratio, base_ms = bench_quantize.latency_ratio("fp32", "int8", {}, 4)
    timed = log[2:]  # after one untimed run of each
    assert sorted(log[:2]) == ["fp32", "int8"]
    assert timed == ["fp32", "int8", "int8", "fp32", "fp32", "int8", "int8", "fp32"]
    assert ratio > 0 and base_ms > 0
