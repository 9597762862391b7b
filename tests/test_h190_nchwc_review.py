"""ort-nchwc-layout, adversarial review H190: inputs the pass must leave alone rather than fail on.

Each model runs at ORT_DISABLE_ALL before and after the rewrite and must agree at fp32
tolerances.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.api import optimize_with_report
from graphopt.backends.onnxruntime import session
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN
from tests.test_pass_ort_nchwc import needs_nchwc

RNG = np.random.default_rng(190)


def _weight(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def _outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return session(model, threads=1, level="disable").run(None, feeds)


def _refusals(report: object) -> dict[str, str]:
    return {
        node: reason
        for rule, node, outcome, reason in report.explain  # type: ignore[attr-defined]
        if rule == "ort-nchwc-layout" and outcome == "refused"
    }


def _empty_params_model() -> onnx.ModelProto:
    """FusedConv(x, W, activation=Relu, activation_params=[]) → Conv → MaxPool. onnxruntime runs
    the empty FLOATS attribute (Relu reads no parameter); the Conv after it is one the pass
    rewrites, so the model does change."""
    fused = helper.make_node(
        "FusedConv", ["x", "W", "B"], ["a"], "fused", domain="com.microsoft", pads=[1] * 4
    )
    fused.attribute.append(helper.make_attribute("activation", "Relu"))
    fused.attribute.append(
        onnx.AttributeProto(name="activation_params", type=onnx.AttributeProto.FLOATS)
    )
    nodes = [
        fused,
        helper.make_node("Conv", ["a", "V"], ["c"], "conv", pads=[1] * 4),
        helper.make_node("MaxPool", ["c"], ["y"], "pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = {"W": _weight(16, 16, 3, 3), "B": _weight(16), "V": _weight(16, 16, 3, 3)}
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=imports, ir_version=8)


@needs_nchwc
@pytest.mark.parametrize("pipeline", ["ort-cpu-native", "ort-cpu"])
def test_fused_conv_with_an_empty_activation_params_list_is_left_as_it_is(pipeline):
    # the pass rebuilt the node's attributes with make_attribute, which infers no type from
    # [] ("Could not infer attribute `activation_params` type from empty iterator"): the
    # whole optimize failed with a PassError
    model = _empty_params_model()
    feeds = {"x": RNG.standard_normal((1, 16, 8, 8)).astype(np.float32)}
    expected = _outputs(model, feeds)
    out, report = optimize_with_report(model, pipeline, explain=True)
    onnx.checker.check_model(out, full_check=True)
    refused = _refusals(report)
    assert refused.get("fused") == "attribute activation_params is an empty list"
    assert "conv" not in refused and "pool" not in refused
    blocked = [n.op_type for n in out.graph.node if n.domain == NCHWC_DOMAIN]
    if pipeline == "ort-cpu-native":
        assert blocked.count("Conv") == 1 and blocked.count("MaxPool") == 1
    for want, got in zip(expected, _outputs(out, feeds), strict=True):
        assert want.shape == got.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _body_reads_conv_output() -> onnx.ModelProto:
    """y = Conv(x, W); r = Relu(y) → Conv(r, V) → z; an If whose branches read y and W from the
    outer scope (ReduceSum(y) / ReduceMax(W)). Relu is y's only reader in the main graph."""
    then_branch = helper.make_graph(
        [helper.make_node("ReduceSum", ["y"], ["t"], keepdims=0)],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("ReduceMax", ["W"], ["e"], keepdims=0)],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [])],
    )
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["y"], "conv_y", pads=[1] * 4),
        helper.make_node("Relu", ["y"], ["r"], "relu"),
        helper.make_node("Conv", ["r", "V"], ["z"], "conv_z"),
        helper.make_node(
            "If", ["c"], ["o"], "branch", then_branch=then_branch, else_branch=else_branch
        ),
    ]
    inits = {"W": _weight(16, 16, 3, 3), "V": _weight(16, 16, 1, 1)}
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 6, 6]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 16, 6, 6]),
            helper.make_tensor_value_info("o", TensorProto.FLOAT, []),
        ],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@needs_nchwc
@pytest.mark.parametrize("take_then", [True, False])
def test_a_body_reading_a_blocked_tensor_or_a_filter_keeps_both(take_then):
    # held: the body's reads count as uses, so Relu is not fused into y's Conv (the body would
    # read Relu(y) through the ReorderOutput) and W, reordered for the Conv, stays for the body
    model = _body_reads_conv_output()
    feeds = {
        "x": RNG.standard_normal((1, 16, 6, 6)).astype(np.float32),
        "c": np.array(take_then),
    }
    expected = _outputs(model, feeds)
    out, _ = optimize_with_report(model, "ort-cpu-native", explain=True)
    onnx.checker.check_model(out, full_check=True)
    convs = [n for n in out.graph.node if n.domain == NCHWC_DOMAIN and n.op_type == "Conv"]
    assert len(convs) == 2
    assert not any(a.name == "activation" for n in convs for a in n.attribute)
    assert "W" in {t.name for t in out.graph.initializer}
    for want, got in zip(expected, _outputs(out, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
