"""`check --target tensorrt` on ops of other domains named like a built-in importer (H126,
review of e3893b2): TensorRT's parser imports them as the ONNX op (parseNode dispatches on the
op type alone), so where the op is known to mean something else, or the node fits no version of
the ONNX op, the import changes the model's meaning or fails: an error, not the warning
e3893b2 gave (and not silence for a com.microsoft Gelu that carries an attribute).

The ops and their signatures are onnxruntime's own schemas (`get_all_operator_schema`, 1.32.0):
com.microsoft Attention (input, weights, bias, ...; num_heads) against ONNX Attention-23 (Q, K,
V), com.microsoft RotaryEmbedding (input, position_ids, cos_cache, sin_cache) against ONNX
RotaryEmbedding-23 (X, cos_cache, sin_cache, position_ids), com.microsoft Range (delta
optional) against ONNX Range (three inputs; the importer reads `inputs.at(2)`), and the NCHWc
ops graphopt's own ort-cpu pipelines save (blocked channels, reordered weights).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.backends.trt_check import Finding, check_tensorrt
from graphopt.realmodels import fetch_model
from tests.trt_models import const, model, vi

I64 = TensorProto.INT64


def _seen(found: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.severity, f.rule, f.node) for f in found]


def _session(m: onnx.ModelProto) -> ort.InferenceSession:
    m.ir_version = 8
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def test_contrib_attention_is_no_onnx_attention() -> None:
    """A com.microsoft Attention as onnxruntime runs it (a packed [1, 4, 8] input, [8, 24]
    weights, num_heads 2): from 10.14 the parser imports it as ONNX Attention (Q, K, V), which
    it is not."""
    node = helper.make_node(
        "Attention", ["x", "w", "b"], ["y"], name="att", domain="com.microsoft", num_heads=2
    )
    rng = np.random.default_rng(0)
    inits = [
        const("w", rng.normal(0, 0.3, (8, 24)).astype(np.float32)),
        const("b", np.zeros(24, np.float32)),
    ]
    m = model([node], [vi("x", [1, 4, 8])], [vi("y", [1, 4, 8])], inits, domains=["com.microsoft"])
    x = rng.normal(0, 1, (1, 4, 8)).astype(np.float32)
    assert _session(m).run(None, {"x": x})[0].shape == (1, 4, 8)  # a real contrib Attention
    assert _seen(check_tensorrt(m, "10.13")) == [("error", "custom-domain", "att")]  # plugin
    found = check_tensorrt(m, "10.14")
    assert _seen(found) == [("error", "custom-domain", "att")]
    assert "imports com.microsoft::Attention as ONNX Attention" in found[0].message
    assert "takes Q, K and V" in found[0].message


def test_contrib_rotary_embedding_takes_its_inputs_in_another_order() -> None:
    node = helper.make_node(
        "RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], name="rope", domain="com.microsoft"
    )
    inputs = [vi("x", [1, 4, 8]), vi("pos", [1, 4], I64), vi("cos", [4, 4]), vi("sin", [4, 4])]
    m = model([node], inputs, [vi("y", None)], domains=["com.microsoft"])
    found = check_tensorrt(m, "11.1")
    assert _seen(found) == [("error", "custom-domain", "rope")]
    assert "the same inputs in another order" in found[0].message


def test_contrib_range_without_delta_fails_the_onnx_importer() -> None:
    """com.microsoft Range's delta is optional (1); ONNX Range needs it, and the importer reads
    the third input. With it, the two agree: a warning only."""
    for given, expected in ((["a", "b"], "error"), (["a", "b", "c"], "warning")):
        node = helper.make_node("Range", given, ["y"], name="r", domain="com.microsoft")
        inputs = [vi(n, [], I64) for n in given]
        m = model([node], inputs, [vi("y", None, I64)], domains=["com.microsoft"])
        feeds = {n: np.array(v, np.int64) for n, v in zip(given, (0, 5, 1), strict=False)}
        assert list(_session(m).run(None, feeds)[0]) == [0, 1, 2, 3, 4]  # a real contrib Range
        found = check_tensorrt(m, 10)
        assert _seen(found) == [(expected, "custom-domain", "r")], found
    m = model(
        [helper.make_node("Range", ["a", "b"], ["y"], name="r", domain="com.microsoft")],
        [vi("a", [], I64), vi("b", [], I64)],
        [vi("y", None, I64)],
        domains=["com.microsoft"],
    )
    (error,) = check_tensorrt(m, 10)
    assert "it has 2 inputs and ONNX Range needs at least 3" in error.message


def test_nchwc_ops_are_no_onnx_ops() -> None:
    """onnxruntime's com.microsoft.nchwc MaxPool has ONNX MaxPool's attributes, but its tensors
    are in blocked NCHWc layout: imported as ONNX MaxPool it pools other values."""
    node = helper.make_node(
        "MaxPool", ["x"], ["y"], name="p", domain="com.microsoft.nchwc", kernel_shape=[2, 2]
    )
    m = model([node], [vi("x", [1, 8, 4, 4])], [vi("y", None)], domains=["com.microsoft.nchwc"])
    found = check_tensorrt(m, 10)
    assert _seen(found) == [("error", "custom-domain", "p")]
    assert "NCHWc" in found[0].message


@pytest.mark.realmodel
def test_graphopts_own_nchwc_output_has_no_warning_only_nchwc_node() -> None:
    """common_det through ort-cpu-native: each com.microsoft.nchwc node (83 Conv, 3 MaxPool,
    2 Upsample, 12 Reorder) is an error, as before e3893b2 (it made the 88 that have an ONNX
    namesake warnings that asked the user to check)."""
    out = graphopt.optimize(onnx.load(str(fetch_model("common_det"))), "ort-cpu-native")
    nchwc = [n.name for n in out.graph.node if n.domain == "com.microsoft.nchwc"]
    assert len(nchwc) > 80
    found = {f.node: f for f in check_tensorrt(out, 10) if f.op.startswith("com.microsoft.nchwc")}
    assert sorted(found) == sorted(nchwc)
    assert {f.severity for f in found.values()} == {"error"}


def test_a_node_that_fits_no_onnx_version_is_an_error() -> None:
    """custom::Conv with an attribute ONNX Conv has not (nchwc's `activation`), with an
    attribute of another type, with an input more, or custom::Relu with two outputs."""
    cases = {
        "attribute": (
            helper.make_node(
                "Conv", ["x", "w"], ["y"], name="n", domain="custom", activation="Relu"
            ),
            "ONNX Conv has no attribute 'activation'",
        ),
        "type": (
            helper.make_node("Conv", ["x", "w"], ["y"], name="n", domain="custom", group=1.0),
            "its attribute 'group' is FLOAT, ONNX Conv's INT",
        ),
        "input": (
            helper.make_node("Conv", ["x", "w", "b", "x"], ["y"], name="n", domain="custom"),
            "it has 4 inputs and ONNX Conv takes at most 3",
        ),
        "output": (
            helper.make_node("Relu", ["x"], ["y", "z"], name="n", domain="custom"),
            "it has 2 outputs and ONNX Relu at most 1",
        ),
    }
    inits = [const("w", np.ones((4, 4, 1, 1), np.float32)), const("b", np.zeros(4, np.float32))]
    for node, says in cases.values():
        outputs = [vi(o, None) for o in node.output]
        m = model([node], [vi("x", [1, 4, 4, 4])], outputs, inits, domains=["custom"])
        found = check_tensorrt(m, 10)
        assert _seen(found) == [("error", "custom-domain", "n")], found
        assert says in found[0].message, found[0].message
    # with ONNX Conv's inputs and attributes only: the warning, then ONNX Conv's rules
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="n", domain="custom", group=1)
    m = model([node], [vi("x", [1, 4, 4, 4])], [vi("y", None)], inits, domains=["custom"])
    assert _seen(check_tensorrt(m, 10)) == [("warning", "custom-domain", "n")]


def test_a_local_function_named_relu_called_with_two_inputs_is_an_error() -> None:
    """The parser takes the Relu importer before the model's function local::Relu (10.1 GA
    parseNode): a call with two inputs is no ONNX Relu (the importer reads the first)."""
    fn = helper.make_function(
        "local",
        "Relu",
        ["a", "b"],
        ["c"],
        [helper.make_node("Add", ["a", "b"], ["c"])],
        [helper.make_opsetid("", 17)],
    )
    call = helper.make_node("Relu", ["x", "x"], ["y"], name="call", domain="local")
    m = model([call], [vi("x", [2, 3])], [vi("y", [2, 3])], domains=["local"], functions=[fn])
    found = check_tensorrt(m, 10)
    assert _seen(found) == [("error", "custom-domain", "call")]
    assert "the model's function local::Relu is not used" in found[0].message
    assert "it has 2 inputs and ONNX Relu takes at most 1" in found[0].message


def test_contrib_gelu_with_an_attribute_is_not_vouched_for() -> None:
    """com.microsoft Gelu has no attributes (onnxruntime refuses 'approximate'); TensorRT would
    read approximate "tanh" as ONNX Gelu's: not the erf Gelu SAME_AS_ONNX vouches for."""
    node = helper.make_node(
        "Gelu", ["x"], ["y"], name="g", domain="com.microsoft", approximate="tanh"
    )
    m = model([node], [vi("x", [1, 4])], [vi("y", None)], domains=["com.microsoft"])
    with pytest.raises(Exception, match="Unrecognized attribute: approximate"):
        _session(m)
    assert _seen(check_tensorrt(m, 10)) == [("warning", "custom-domain", "g")]
