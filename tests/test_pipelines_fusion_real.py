"""The built-in pipelines (default, ort-cpu, tensorrt) on the three real detectors, fed real
photographs: outputs within 1e-4 relative, fusion counts against onnxsim's, contrib ops only in
ort-cpu, and the ort-cpu output running at ORT_DISABLE_ALL."""

from __future__ import annotations

import collections
from functools import cache

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.backends.onnxruntime import compare, session
from graphopt.backends.onnxruntime import run as ort_run
from tests.conftest import onnxruntime_fuses_conv_hardswish

pytestmark = pytest.mark.realmodel

MODELS = ("layout_cdla", "common_det", "ppocr_det")
PIPELINES = ("default", "ort-cpu", "tensorrt")

# Non-Constant nodes onnxsim 0.4 leaves (measured with onnxsim.simplify on these files).
ONNXSIM_NODES = {"layout_cdla": 521, "common_det": 275, "ppocr_det": 297}


@cache
def _load(path: str) -> onnx.ModelProto:
    return onnx.load(path)


@cache
def _optimized(path: str, pipeline: str) -> onnx.ModelProto:
    return graphopt.optimize(_load(path), pipeline)


def _counts(model: onnx.ModelProto) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.node if n.op_type != "Constant")


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", MODELS)
def test_outputs_match_on_real_images(name, pipeline, real_model, real_feeds):
    original = _load(str(real_model(name)))
    out = _optimized(str(real_model(name)), pipeline)
    assert [o.name for o in out.graph.output] == [o.name for o in original.graph.output]
    onnx.checker.check_model(out, full_check=True)
    for feeds in real_feeds(name, 2):
        for d in compare(original, out, feeds):
            assert d.max_rel <= 1e-4, (name, pipeline, d)
    contrib = {n.domain for n in out.graph.node} - {"", "ai.onnx"}
    if pipeline == "ort-cpu":  # the NCHWc probe and If at the top, the fusions in the branches
        assert contrib <= {"com.microsoft", "com.microsoft.nchwc"}
    else:
        assert not contrib, f"{pipeline} emitted {contrib}"


@pytest.mark.parametrize("name", MODELS)
def test_ort_cpu_output_runs_without_onnxruntime_optimizer(name, real_model, real_feeds):
    original = _load(str(real_model(name)))
    out = _optimized(str(real_model(name)), "ort-cpu")
    fused = session(out, level="disable")
    reference = session(original, level="all")
    feeds = real_feeds(name, 1)[0]
    want, got = ort_run(reference, feeds), ort_run(fused, feeds)
    for key, value in want.items():
        scale = float(np.max(np.abs(value))) or 1.0
        assert float(np.max(np.abs(got[key] - value))) / scale <= 1e-4, key


def test_layout_cdla_fusions(real_model):
    path = str(real_model("layout_cdla"))
    before = _counts(_load(path))
    assert before["BatchNormalization"] == 94 and before["Clip"] == 94
    default = _counts(_optimized(path, "default"))
    # Every BN folded; every x·clip(x+3, 0, 6)/6 is x·HardSigmoid(x) (opset 13 has no HardSwish).
    assert default["BatchNormalization"] == 0 and default["Clip"] == 0 and default["Div"] == 0
    assert default["HardSigmoid"] == 94 + 2
    assert sum(default.values()) < ONNXSIM_NODES["layout_cdla"] - 150
    assert _counts(_optimized(path, "tensorrt")) == default
    fused = _optimized(path, "ort-fusions")
    ort = _counts(fused)
    activations = collections.Counter(
        onnx.helper.get_attribute_value(a).decode()
        for n in fused.graph.node
        if n.op_type == "FusedConv"
        for a in n.attribute
        if a.name == "activation"
    )
    assert activations["Relu"] == 2 and activations["HardSigmoid"] == 2
    if onnxruntime_fuses_conv_hardswish():  # each Conv·HardSigmoid·Mul is one FusedConv
        assert activations["HardSwish"] == 94 and ort["FusedConv"] >= 94
    else:  # (onnxruntime 1.23.2: no HardSwish activation) the 94 pairs stay as they were
        assert activations["HardSwish"] == 0 and ort["HardSigmoid"] == 94
    assert sum(ort.values()) < sum(default.values())


def test_layout_cdla_hardswish_after_opset_upgrade(real_model, real_feeds):
    original = _load(str(real_model("layout_cdla")))
    out = graphopt.optimize(original, "default", upgrade_opset=True)
    assert {o.domain: o.version for o in out.opset_import}[""] == 14
    counts = _counts(out)
    assert counts["HardSwish"] == 94 and counts["HardSigmoid"] == 2
    for d in compare(original, out, real_feeds("layout_cdla", 1)[0]):
        assert d.max_rel <= 1e-4, d


def test_ppocr_det_fusions(real_model):
    path = str(real_model("ppocr_det"))
    default = _counts(_optimized(path, "default"))
    assert default["BatchNormalization"] == 0 and default["Clip"] == 0
    assert sum(default.values()) <= ONNXSIM_NODES["ppocr_det"]


def test_common_det_silu(real_model):
    path = str(real_model("common_det"))
    before = _counts(_load(path))
    default = _counts(_optimized(path, "default"))
    # Opset 11 has no Swish: the x·σ(x) pairs stay in the portable pipelines.
    assert default["Mul"] == before["Mul"] and sum(default.values()) <= sum(before.values())
    ort = _counts(_optimized(path, "ort-fusions"))
    assert ort["QuickGelu"] == 74 and ort["Sigmoid"] == 0


@pytest.mark.parametrize("name", MODELS)
def test_tensorrt_pipeline_passes_the_static_tensorrt_check(name, real_model):
    from graphopt.backends.trt_check import check_tensorrt, errors

    out = _optimized(str(real_model(name)), "tensorrt")
    assert errors(check_tensorrt(out, 10)) == []
    contrib = _optimized(str(real_model(name)), "ort-fusions")
    assert any(f.rule == "custom-domain" for f in errors(check_tensorrt(contrib, 10)))
