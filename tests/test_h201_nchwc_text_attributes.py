"""ort-nchwc-layout, H201: a Resize whose string attribute is not UTF-8 is left alone.

onnxruntime refuses such a model (it compares the raw bytes with "nearest", "asymmetric",
"floor"); the pass decoded them and raised, so ort-cpu / ort-cpu-native failed with a PassError
where they should skip that one node and rewrite the rest.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import needs_nchwc

RNG = np.random.default_rng(201)
ODD = b"near\xffest"  # not UTF-8


def _resize_model(attribute: str, opset: int) -> onnx.ModelProto:
    """Conv(32 → 32) → Resize ×2 whose `attribute` holds bytes that are not UTF-8."""
    attrs: dict[str, object] = {"mode": "nearest"}
    if opset >= 11:
        attrs |= {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
        inputs = ["c", "", "scales"]
    else:
        inputs = ["c", "scales"]
    attrs[attribute] = ODD
    op = "Resize" if opset >= 10 else "Upsample"
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], "conv"),
        helper.make_node(op, inputs, ["y"], "resize", **attrs),
    ]
    weight = (RNG.standard_normal((32, 32, 1, 1)) / np.sqrt(32)).astype(np.float32)
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 32, 5, 7])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 32, 10, 14])],
        [
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


CASES = [
    ("mode", 13, "near\\xffest interpolation of Resize-13"),
    ("coordinate_transformation_mode", 13, "nearest Resize whose coordinate_transformation_mode"),
    ("nearest_mode", 13, "nearest Resize whose nearest_mode is not floor"),
    ("mode", 9, "near\\xffest interpolation of Upsample-9"),
]


@needs_nchwc
@pytest.mark.parametrize("attribute, opset, reason", CASES)
def test_resize_with_a_non_utf8_attribute_is_refused_not_an_error(attribute, opset, reason):
    model = _resize_model(attribute, opset)
    pipeline = make_pipeline("t", ["ort-nchwc-layout"])
    out, report = graphopt.optimize_with_report(model, pipeline, explain=True)
    notes = {node: (outcome, why) for rule, node, outcome, why in report.explain}
    assert notes["conv"] == ("applied", "")
    outcome, why = notes["resize"]
    assert outcome == "refused" and why.startswith(reason)
    # the Resize is kept, its bytes as they were, reading the Conv's output in NCHW again
    (resize,) = [n for n in out.graph.node if n.name == "resize"]
    assert (
        helper.get_attribute_value(next(a for a in resize.attribute if a.name == attribute)) == ODD
    )
    ops = sorted(n.op_type for n in out.graph.node if n.domain == NCHWC_DOMAIN)
    assert ops == ["Conv", "ReorderInput", "ReorderOutput"]


@needs_nchwc
@pytest.mark.parametrize("pipeline", ["ort-cpu-native", "ort-cpu"])
def test_pipelines_finish_on_a_non_utf8_resize_mode(pipeline):
    out = graphopt.optimize(_resize_model("mode", 13), pipeline)
    assert any(n.domain == NCHWC_DOMAIN for n in out.graph.node)
    assert ODD in out.SerializeToString()
