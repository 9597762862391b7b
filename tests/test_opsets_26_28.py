"""Opsets 26 to 28 (onnx 1.23's newest): graphopt refused them ("unsupported opset 28
(graphopt supports opsets 7..25)") although onnx checks them and onnxruntime 1.32 runs them.

What changed there: new ops (BitCast, CumProd, CausalConvWithState, LinearAttention,
SwiGLU), new element types (float6, and more types for existing ops), Range's `stash_type`,
Mod's `fmod=0` on floats and SpaceToDepth's `mode`; no op that a pass rewrites changed
meaning. Checked here: the real detectors converted to opset 28 through every built-in
pipeline against the original on real photographs; onnx's own node test cases at opsets 26-28
(`onnx.backend.test.case.node`, models with reference inputs) through the three pipelines
against onnxruntime on the original; quantize refusing, before any calibration, an opset
whose QuantizeLinear/DequantizeLinear the installed onnxruntime lacks (1.32 at 28).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import version_converter

import graphopt
from graphopt.backends.onnxruntime import qdq_runs
from graphopt.cli import main
from graphopt.errors import BackendError, LoadError, QuantizeError
from graphopt.ir import load
from graphopt.ir.model_io import SUPPORTED_OPSETS
from tests.conftest import assert_same_outputs, ort_run

NEWEST = onnx.defs.onnx_opset_version()
needs_28 = pytest.mark.skipif(NEWEST < 28, reason="the installed onnx knows no opset 28")


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _at(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    converted = version_converter.convert_version(model, opset)
    assert _default_opset(converted) == opset
    return converted


@needs_28
def test_the_supported_range_reaches_28_and_stops_at_what_onnx_knows() -> None:
    assert SUPPORTED_OPSETS.start == 7 and SUPPORTED_OPSETS.stop - 1 == min(28, NEWEST)
    model = onnx.parser.parse_model(
        f"""<ir_version: 10, opset_import: ["" : {NEWEST + 1}]>
        g (float[2] x) => (float[2] y) {{ y = Relu(x) }}"""
    )
    with pytest.raises(LoadError, match=rf"unsupported opset {NEWEST + 1} \(graphopt supports"):
        load(model)


@needs_28
@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "layout_cdla", "ppocr_det"])
def test_real_detectors_at_opset_28_keep_their_outputs(name, real_model, real_feeds) -> None:
    original = onnx.load(str(real_model(name)))
    at_28 = _at(original, 28)
    feeds = real_feeds(name, 1)[0]
    for pipeline in ("default", "ort-cpu", "tensorrt"):
        optimized = graphopt.optimize(at_28, pipeline)
        assert _default_opset(optimized) == 28, pipeline
        assert len(optimized.graph.node) < len(at_28.graph.node), pipeline
        onnx.checker.check_model(optimized, full_check=True)
        assert_same_outputs(original, optimized, feeds)
    if name == "layout_cdla":  # its 94 decomposed HardSwish chains fuse at 28 as at 13
        ops = [n.op_type for n in graphopt.optimize(at_28).graph.node]
        assert ops.count("HardSwish") == 94


# GRAPHOPT_ONNX_CASES=all: every case onnxruntime runs, at every opset graphopt accepts, through
# all three pipelines (about 1,500 cases, a minute; on 2026-11-30 nothing beyond _KNOWN and
# float16 attention outputs an ulp apart, where onnxruntime's MatMul by a constant rounds
# otherwise than by a computed tensor: hence two ulps for float16)
_ALL_CASES = os.environ.get("GRAPHOPT_ONNX_CASES") == "all"
# Known there (opset 20, so outside the bounded run): AffineGrid's 2-D expansion feeds Range
# a 1-element 1-D limit from an If on a condition the pipelines fold; at ORT_ENABLE_ALL
# onnxruntime then inlines the If, and its inference refuses the Range input, which ONNX
# defines as a scalar (the original model's defect, hidden behind the If until then).
_KNOWN = {
    f"test_affine_grid_2d{corners}_expanded": "Input to 'Range' op should be scalars"
    for corners in ("", "_align_corners")
}


def _node_cases() -> list:
    with warnings.catch_warnings():  # the case generators' own numpy overflow warnings
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = collect_testcases(None)
    low = SUPPORTED_OPSETS.start if _ALL_CASES else 26
    return [c for c in cases if c.data_sets and low <= _default_opset(c.model) <= 28]


def _same(a: object, b: object) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
    a_, b_ = np.asarray(a), np.asarray(b)
    if a_.dtype != b_.dtype or a_.shape != b_.shape:
        return False
    if a_.dtype.kind in "fc":
        tolerance = 2e-3 if a_.dtype == np.float16 else 1e-4  # float16: two ulps
        return bool(
            np.allclose(
                a_.astype(np.float64), b_.astype(np.float64), tolerance, 1e-5, equal_nan=True
            )
        )
    return bool(np.array_equal(a_, b_))


@pytest.mark.slow
@needs_28
def test_onnx_node_cases_at_opsets_26_to_28_keep_their_outputs() -> None:
    """Each of onnx's node test cases at opsets 26-28 that onnxruntime runs: the `default` and
    `ort-cpu` pipelines' results (`tensorrt` gave the same answers in a one-off run) pass the
    full check (where the original does) and compute what onnxruntime computes on the
    original, on the case's own inputs."""
    ran, problems = 0, []
    pipelines = ("default", "ort-cpu", "tensorrt") if _ALL_CASES else ("default", "ort-cpu")
    for case in _node_cases():
        model = case.model
        feeds = {i.name: v for i, v in zip(model.graph.input, case.data_sets[0][0], strict=False)}
        try:
            expected = list(ort_run(model, feeds).values())
        except Exception:  # onnxruntime lacks the op there (QuantizeLinear-28, BitCast, ...)
            continue
        original_checks = True
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception:
            original_checks = False
        for pipeline in pipelines:
            with contextlib.redirect_stderr(io.StringIO()):
                optimized = graphopt.optimize(model, pipeline)
            if original_checks:
                onnx.checker.check_model(optimized, full_check=True)
            try:
                got = list(ort_run(optimized, feeds).values())
            except BackendError as e:
                known = _KNOWN.get(case.name)
                if known is None or known not in str(e):
                    problems.append(f"{case.name} ({pipeline}): {str(e)[:200]}")
                continue
            if len(got) != len(expected) or not all(map(_same, got, expected)):
                problems.append(f"{case.name} ({pipeline})")
        ran += 1
    assert ran >= (1400 if _ALL_CASES else 150), ran  # 195 at 26-28 (onnx 1.23.2, ORT 1.32)
    assert not problems, problems


def _conv_at(opset: int) -> onnx.ModelProto:
    return onnx.parser.parse_model(
        f"""<ir_version: 11, opset_import: ["" : {opset}]>
        g (float[1, 3, 8, 8] x) => (float[1, 4, 8, 8] y)
        <float[4, 3, 3, 3] w = {{{", ".join(str((i % 7) / 7 - 0.4) for i in range(108))}}},
         float[4] b = {{0.1, -0.2, 0.3, 0.0}}>
        {{ c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
           y = Relu(c) }}"""
    )


def _calibration_folder(tmp_path: Path) -> Path:
    from graphopt.realmodels import load_image

    folder = tmp_path / "calib"
    folder.mkdir()
    from graphopt.realmodels import image_paths

    for i, path in enumerate(image_paths()[:2]):
        image = load_image(path)[:8, :8, :3].astype(np.float32) / 255.0
        np.save(folder / f"{i}.npy", image.transpose(2, 0, 1)[None])
    return folder


@needs_28
@pytest.mark.realmodel
def test_quantize_at_an_opset_without_qdq_kernels_says_so_before_calibrating(
    tmp_path: Path,
) -> None:
    src = tmp_path / "m28.onnx"
    onnx.save(_conv_at(28), str(src))
    out = tmp_path / "q.onnx"
    calib = _calibration_folder(tmp_path)
    argv = ["quantize", str(src), "-o", str(out), "--calib", str(calib), "--no-progress"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    if qdq_runs(28):  # an onnxruntime with Q/DQ-28 kernels: the model is quantized there
        assert code == 0 and out.exists()
        return
    message = err.getvalue().strip()
    assert code == 2 and not out.exists()
    assert message.count("\n") == 0 and "Traceback" not in message
    assert "no QuantizeLinear/DequantizeLinear at opset 28" in message
    assert "convert the model to opset 27 first" in message
    # the advice holds: converted to 27, the same model quantizes and runs
    onnx.save(_at(_conv_at(28), 27), str(src))
    assert main(argv) == 0
    quantized = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    x = np.load(calib / "0.npy")
    assert np.isfinite(ort_run(quantized, {"x": x})["y"]).all()


def test_the_qdq_probe_answers_for_the_opsets_quantize_uses() -> None:
    """13 (per-channel axis) and 19 (float16 Q/DQ) run in every onnxruntime graphopt supports;
    10 has no per-channel DequantizeLinear, which the probe uses: False, not an error."""
    assert qdq_runs(13) and qdq_runs(19)
    assert not qdq_runs(10)
    with pytest.raises(QuantizeError, match="no QuantizeLinear/DequantizeLinear at opset 10"):
        from graphopt.quant.api import _refuse_opset_without_qdq_kernels

        _refuse_opset_without_qdq_kernels(10)
