"""split(merge([a, b]), task=...) gives the task its own IR version and opsets back where its
ops mean the same there.

The merged model imports the highest IR version and opsets of the models; split --task kept
them: fsmn_vad (IR 7, opset 14) merged with khmer_seg (IR 10, opset 17) came back as IR 10,
opset 17, which an older runtime refuses although nothing in it needs either. merge records
each task's IR and the opsets its ops are written for ("ir_version", "opset_import" in the task
table); split gives them back where every op of the split part has the same schema at both
versions, and keeps the merged ones for a task merge converted to the newer opset.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import parser

from graphopt.multitask import MergeError, merge, split
from graphopt.multitask.merge import METADATA_KEY
from graphopt.realmodels import fetch_model, model_inputs


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _versions(model: onnx.ModelProto) -> tuple[int, dict[str, int]]:
    return model.ir_version, {o.domain: o.version for o in model.opset_import}


def test_real_tasks_get_their_own_ir_and_opset_back() -> None:
    names = ["fsmn_vad", "khmer_seg"]
    paths = [str(fetch_model(n)) for n in names]
    originals = [onnx.load(p) for p in paths]
    assert _versions(originals[0]) != _versions(originals[1])  # what the test is about
    merged = merge(paths, prefixes=["vad_", "seg_"])
    for name, original, prefix in zip(names, originals, ["vad_", "seg_"], strict=True):
        back = split(merged, task=prefix)
        assert _versions(back) == _versions(original)
        onnx.checker.check_model(back, full_check=True)
        for feeds in model_inputs(name, 2):
            for want, got in zip(_run(original, feeds), _run(back, feeds), strict=True):
                assert want.dtype == got.dtype and np.array_equal(want, got)


def _model(opset: int, ir: int, body: str) -> onnx.ModelProto:
    return parser.parse_model(
        f'<ir_version: {ir}, opset_import: ["" : {opset}]>\n'
        f"g (float[1,3] x) => (float[3] y) {{ {body} }}"
    )


def test_a_converted_task_keeps_the_opset_it_was_converted_to() -> None:
    # Squeeze takes its axes as an input from opset 13: merge converts the opset 11 model
    old = _model(11, 6, "y = Squeeze <axes = [0]> (x)")
    new = _model(
        13, 7, "a = Relu(x) \n ax = Constant <value = int64[1] {0}> () \n y = Squeeze(a, ax)"
    )
    merged = merge([old, new])
    back = split(merged, task="m0_")
    assert _versions(back) == (7, {"": 13})  # opset 13's Squeeze now; IR 7: what 13 needs
    onnx.checker.check_model(back, full_check=True)
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    assert np.array_equal(_run(back, {"x": x})[0], _run(old, {"x": x})[0])
    assert _versions(split(merged, task="m1_")) == (7, {"": 13})


def test_an_unconverted_task_of_a_lower_opset_gets_it_back() -> None:
    # Sin and Cos have one schema (7) from opset 7 on: the opset 9 model is not converted
    low = parser.parse_model(
        '<ir_version: 4, opset_import: ["" : 9]>\n'
        "g (float[1,3] x) => (float[1,3] y) { a = Sin(x) \n y = Cos(a) }"
    )
    high = parser.parse_model(
        '<ir_version: 9, opset_import: ["" : 19]>\n'
        "g (float[1,3] x) => (float[1,3] y) { a = Sin(x) \n y = Neg(a) }"
    )
    merged = merge([high, low])
    assert _versions(merged) == (9, {"": 19})
    back = split(merged, task="m1_")  # its Sin is the one high's task computes
    assert _versions(back) == (4, {"": 9})
    onnx.checker.check_model(back, full_check=True)
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    assert np.array_equal(_run(back, {"x": x})[0], _run(low, {"x": x})[0])
    assert _versions(split(merged, task="m0_")) == (9, {"": 19})
    # a merged model's output split out by name keeps the merged versions
    assert _versions(split(merged, ["m1_y"])) == (9, {"": 19})


@pytest.mark.parametrize(
    ("key", "value"),
    [("ir_version", "7"), ("ir_version", 0), ("opset_import", {"": "12"}), ("opset_import", [])],
)
def test_a_damaged_record_is_one_line(key: str, value: object) -> None:
    a = parser.parse_model(
        '<ir_version: 7, opset_import: ["" : 13]>\n'
        "g (float[1,3] x) => (float[1,3] y) { y = Relu(x) }"
    )
    merged = merge([a, a])
    for p in merged.metadata_props:
        if p.key == METADATA_KEY:
            table = json.loads(p.value)
            table["m1_"][key] = value
            p.value = json.dumps(table)
    with pytest.raises(MergeError, match=f"task 'm1_' '{key}'"):
        split(merged, task="m0_")


def test_a_model_without_an_ir_version_gets_the_one_its_opsets_need() -> None:
    # ir_version 0 (not set, as some exporters leave it): merge recorded 0, and split called
    # its own task table damaged
    a = parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 14]>\n'
        "g (float[2,3] x) => (float[2,3] y) { y = Relu(x) }"
    )
    a.ir_version = 0
    back = split(merge([a, a]), task="m1_")
    assert _versions(back) == (7, {"": 14})
    onnx.checker.check_model(back, full_check=True)
