"""The default pipeline on the three real detectors: fewer nodes, same outputs on real photos."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.api import optimize_with_report
from graphopt.backends.onnxruntime import run, session

MODELS = ["common_det", "layout_cdla", "ppocr_det"]


@pytest.mark.realmodel
@pytest.mark.parametrize("name", MODELS)
def test_default_pipeline_on_real_detector(name, real_model, real_feeds):
    path = real_model(name)
    original = onnx.load(str(path))
    optimized, report = optimize_with_report(path)
    onnx.checker.check_model(optimized, full_check=True)

    assert len(optimized.graph.node) <= len(original.graph.node)
    constants_before = sum(n.op_type == "Constant" for n in original.graph.node)
    assert sum(n.op_type == "Constant" for n in optimized.graph.node) == 0
    assert report.totals()["constants-to-initializers"]["converted"] == constants_before
    if name == "layout_cdla":
        assert constants_before == 878
        assert len(optimized.graph.node) <= len(original.graph.node) - 878
    if name == "ppocr_det":
        assert len(optimized.graph.node) <= len(original.graph.node) - 342
    assert [o.name for o in optimized.graph.output] == [o.name for o in original.graph.output]
    assert [i.name for i in optimized.graph.input] == [
        i.name
        for i in original.graph.input
        if i.name not in {t.name for t in original.graph.initializer}
    ]

    reference, candidate = session(original), session(optimized)
    for feeds in real_feeds(name, 2):
        a, b = run(reference, feeds), run(candidate, feeds)
        for out in a:
            assert a[out].shape == b[out].shape and a[out].dtype == b[out].dtype
            scale = float(np.max(np.abs(a[out]))) or 1.0
            rel = float(np.max(np.abs(a[out].astype(np.float64) - b[out]))) / scale
            assert rel <= 1e-4, f"{name}:{out} differs by {rel:.2e} (relative to max |output|)"
    # the pipeline settles: a second run finds nothing left to do
    _, again = optimize_with_report(optimized)
    assert not any(r.changed for r in again.records), [r.name for r in again.records if r.changed]


@pytest.mark.realmodel
def test_dynamic_input_model_stays_dynamic(real_model):
    """PP-OCR det takes any H×W: nothing the pipeline folds may depend on the 640×640 feeds."""
    from graphopt.realmodels import PREPROCESS, images, preprocess

    path = real_model("ppocr_det")
    original = onnx.load(str(path))
    optimized = optimize_with_report(path)[0]
    reference, candidate = session(original), session(optimized)
    image = images(1, names=("page.png",))[0]  # a page of text: the detector fires
    for size in ((320, 480), (224, 352)):
        options = {**PREPROCESS["ppocr_det"], "size": size}
        feeds = {"x": preprocess(image, **options)}
        a, b = run(reference, feeds), run(candidate, feeds)
        for out in a:
            assert a[out].shape == b[out].shape
            scale = float(np.max(np.abs(a[out])))
            assert scale > 0.5  # text was found: the comparison is meaningful
            assert float(np.max(np.abs(a[out] - b[out]))) / scale <= 1e-4
