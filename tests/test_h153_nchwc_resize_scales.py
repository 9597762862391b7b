"""ort-nchwc-layout refuses, with a reason, a Resize of a blocked tensor whose constant scales
have no int64 value (inf, NaN, 1e20): the nchwc Upsample takes its scales as int64 attributes
and the pass raised (`int(inf)`, an attribute out of range) instead of leaving the node."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN, OrtNchwcLayout
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import needs_nchwc

RNG = np.random.default_rng(1531)


def _model(scales: list[float], opset: int) -> onnx.ModelProto:
    """Resize(Conv(x), scales) (nearest, asymmetric, floor: what the nchwc Upsample runs)."""
    weight = RNG.standard_normal((16, 16, 3, 3)).astype(np.float32) / np.float32(12)
    if opset == 10:
        resize = helper.make_node("Resize", ["a", "scales"], ["y"], mode="nearest")
    else:
        resize = helper.make_node(
            "Resize",
            ["a", "", "scales"],
            ["y"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["a"], pads=[1, 1, 1, 1]), resize],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list("nchw"))],
        [
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(np.array(scales, np.float32), "scales"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _layout(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    pipe = make_pipeline("t", [OrtNchwcLayout()])
    out, report = graphopt.optimize_with_report(model, pipe, explain=True)
    onnx.checker.check_model(out, full_check=True)
    return out, [why for _r, _n, outcome, why in report.explain if outcome == "refused"]


@needs_nchwc
@pytest.mark.parametrize("opset", [10, 13])
@pytest.mark.parametrize("scale", [float("inf"), float("nan"), 1e20])
def test_scales_without_an_int64_value_leave_the_resize(scale, opset):
    out, refused = _layout(_model([1.0, 1.0, scale, 2.0], opset))
    assert any("scales" in why and "finite" in why for why in refused)
    resizes = [n for n in out.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 1 and resizes[0].domain == ""
    assert any(n.domain == NCHWC_DOMAIN and n.op_type == "Conv" for n in out.graph.node)
    if scale == 1e20:  # onnxruntime loads this one (its output is too large to run)
        session(out, threads=1, level="disable")


@needs_nchwc
@pytest.mark.parametrize("opset", [10, 13])
def test_integer_scales_still_become_the_nchwc_upsample(opset):
    original = _model([1.0, 1.0, 2.0, 3.0], opset)
    out, _ = _layout(original)
    assert [n.op_type for n in out.graph.node if n.domain == NCHWC_DOMAIN].count("Upsample") == 1
    x = RNG.standard_normal((1, 16, 4, 4)).astype(np.float32)
    (expected,) = session(original, threads=1, level="disable").run(None, {"x": x})
    (got,) = session(out, threads=1, level="disable").run(None, {"x": x})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
