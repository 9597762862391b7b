"""--stats' node counts add up to the node counts `graphopt optimize` reports (H212).

The `removed` column of a run's passes (`RunReport.totals()`) must sum to the input's nodes
minus the output's, counted as optimize's summary line counts them. For the `ort-cpu`
pipeline, whose `ort-nchwc-layout: {fallback: true}` puts the NCHWc graph and its NCHW
fallback behind an If, the summary counts the NCHWc graph; --stats counted the guard's 5
top-level nodes, so the layout pass read as removing nearly every node (common_det: 186
removed, where its NCHWc graph has 12 more nodes than its input; the column summed to 274
for a model that went from 279 to 203 nodes).
"""

from __future__ import annotations

import onnx
import pytest

from graphopt.api import optimize_with_report
from graphopt.commands.optimize import nodes_after_text, nodes_before_text
from graphopt.passes import nchwc_fallback
from tests.test_pass_ort_nchwc import needs_nchwc


def _removed(report) -> int:  # type: ignore[no-untyped-def]
    return sum(entry["nodes_removed"] for entry in report.totals().values())


@needs_nchwc
@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "ddddocr_ocr"])
def test_ort_cpu_stats_remove_what_the_summary_says(real_model, name: str) -> None:
    model = onnx.load(str(real_model(name)))
    optimized, report = optimize_with_report(model, "ort-cpu")
    guarded = nchwc_fallback.branches(optimized)
    assert guarded is not None  # the NCHWc graph behind its block-size guard
    before, after = len(model.graph.node), len(guarded[0].node)
    assert nodes_before_text(model) == str(before)
    assert nodes_after_text(optimized).startswith(f"{after} nodes (NCHWc graph;")
    assert _removed(report) == before - after
    layout = [r for r in report.records if r.name == "ort-nchwc-layout"]
    assert len(layout) == 1 and layout[0].nodes_after == after


@pytest.mark.realmodel
@pytest.mark.parametrize("pipeline", ["default", "tensorrt", "ort-fusions"])
def test_other_pipelines_stats_add_up(real_model, pipeline: str) -> None:
    model = onnx.load(str(real_model("common_det")))
    optimized, report = optimize_with_report(model, pipeline)
    assert nchwc_fallback.branches(optimized) is None
    assert _removed(report) == len(model.graph.node) - len(optimized.graph.node)
