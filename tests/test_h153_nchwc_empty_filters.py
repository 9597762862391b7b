"""ort-nchwc-layout leaves a Conv with an empty filter (0 output or 0 input channels) as it is:
onnxruntime runs such a Conv (its output is empty), but no ReorderOutput takes 0 channels (the
rewritten model did not load) and the filter reorder failed on 0 input channels (the pass
raised)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.nchwc_fallback import branches, with_block_size
from graphopt.passes.ort_nchwc import OrtNchwcLayout
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import BLOCK, needs_nchwc

RNG = np.random.default_rng(1530)


def _model(x_channels: int, filters: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """Conv(x, W) → a, then (with V) Conv(a, V) → y, else a is y; plus z = Relu(Conv(x, U)),
    a Conv the pass does rewrite where x has channels (so that the fallback guard is made)."""
    inits = {name: RNG.standard_normal(shape).astype(np.float32) for name, shape in filters.items()}
    inits["U"] = RNG.standard_normal((16, x_channels, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["a" if "V" in filters else "y"], pads=[1] * 4)]
    if "V" in filters:
        nodes.append(helper.make_node("Conv", ["a", "V"], ["y"]))
    nodes += [helper.make_node("Conv", ["x", "U"], ["u"]), helper.make_node("Relu", ["u"], ["z"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, x_channels, 6, 6])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, list("nchw")),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 16, 6, 6]),
        ],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


CASES = {
    "no_output_channels": (16, {"W": (0, 16, 3, 3)}),
    "no_input_channels": (0, {"W": (16, 0, 3, 3)}),
    "empty_then_empty": (16, {"W": (0, 16, 3, 3), "V": (16, 0, 1, 1)}),
}


@needs_nchwc
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("fallback", [False, True])
def test_a_conv_with_an_empty_filter_is_left_alone(case, fallback):
    x_channels, filters = CASES[case]
    original = _model(x_channels, filters)
    pipe = make_pipeline("t", [OrtNchwcLayout(fallback=fallback)])
    out, report = graphopt.optimize_with_report(original, pipe, explain=True)
    onnx.checker.check_model(out, full_check=True)
    refused = [why for _rule, _node, outcome, why in report.explain if outcome == "refused"]
    assert any(why.startswith("empty filter") for why in refused)
    x = RNG.standard_normal((1, x_channels, 6, 6)).astype(np.float32)
    expected = session(original, threads=1, level="disable").run(None, {"x": x})
    variants = [out]
    if fallback:  # the Conv reading U is rewritten, behind the guard, unless its filter is empty
        assert (branches(out) is not None) == (x_channels > 0)
        if x_channels:
            variants.append(with_block_size(out, 2 * BLOCK))
    for variant in variants:
        got = session(variant, threads=1, level="disable").run(None, {"x": x})
        for g, e in zip(got, expected, strict=True):
            assert g.shape == e.shape
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
