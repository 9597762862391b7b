"""`check --target tensorrt`: ops of other domains named like a built-in importer, and If-branch
dimensions known on one side only (graphopt/backends/trt_check.py).

1. TensorRT's parser dispatches on the op type alone (onnx-tensorrt ModelImporter.cpp parseNode,
   10.1 GA lines 155-167: built-in importer, then model-local function, then plugin), so
   `com.microsoft::Gelu` is imported by the Gelu importer (kGELU_ERF), not as a plugin; check
   called it a plugin error. A call of a model-local function named like a built-in op is the
   built-in op too, its body unused.
2. Before 10.11 an If's outputs need the same shape on a run-time condition (NvInfer.h 10.0 ..
   10.10); the parser compares nothing itself (importIf hands each pair to addOutput). [1, ?]
   against [1, 2] was passed over in silence; TensorRT needs it proven equal: a warning.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.trt_check import Finding, check_tensorrt
from graphopt.realmodels import fetch_model, model_inputs
from tests.trt_models import const, model, vi


def _image(node: onnx.NodeProto, inits=(), **kw) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    return model([node], [vi("x", [1, 3, 8, 8])], [vi("y", None)], inits, **kw)


def _seen(found: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.severity, f.rule, f.node) for f in found]


# -- 1. other domains, built-in importers ------------------------------------------------------


def test_contrib_gelu_is_imported_as_onnx_gelu():
    node = helper.make_node("Gelu", ["x"], ["y"], name="g", domain="com.microsoft")
    m = _image(node, domains=["com.microsoft"])
    assert check_tensorrt(m, 10) == []
    assert check_tensorrt(m, "10.0") == []
    # the meaning agrees (SAME_AS_ONNX): onnxruntime's com.microsoft Gelu is ONNX Gelu-20's erf
    # form, on the pixels of a real photograph
    pixels = _photo()
    onnx_gelu = model(
        [helper.make_node("Gelu", ["x"], ["y"])], [vi("x", [1, 3, 8, 8])], [vi("y", None)], opset=20
    )
    a, b = (_run(g, pixels) for g in (m, onnx_gelu))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def _photo() -> np.ndarray:
    """An 8×8 crop of a real photograph, centred and scaled to about [-3, 3]."""
    feed = model_inputs("ppocrv6_det", 1)[0]
    x = np.asarray(next(iter(feed.values())), np.float32)[:, :3, 100:108, 100:108]
    return ((x - x.mean()) / (x.std() + 1e-6)).astype(np.float32)


def _run(m: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_other_domain_op_is_judged_as_the_onnx_op():
    """`custom::Resize` is ONNX Resize to the parser: its attribute rules apply, and the
    domain is a warning, not a plugin error."""
    node = helper.make_node(
        "Resize", ["x", "", "scales"], ["y"], name="r", domain="custom", mode="area"
    )
    m = _image(node, [const("scales", np.array([1, 1, 2, 2], np.float32))], domains=["custom"])
    found = check_tensorrt(m, 10)
    assert _seen(found) == [
        ("warning", "custom-domain", "r"),
        ("error", "unsupported-attribute", "r"),
    ]
    assert "imports custom::Resize as ONNX Resize" in found[0].message
    assert "Resize mode 'area' is not supported" in found[1].message


def test_other_domain_op_without_an_importer_in_that_version_needs_a_plugin():
    """ONNX Attention has an importer from 10.14 (ADDED_IN): before it, com.microsoft
    Attention falls back to the plugin importer."""
    node = helper.make_node(
        "Attention", ["q", "k", "v"], ["y"], name="att", domain="com.microsoft", num_heads=2
    )
    m = model(
        [node],
        [vi(n, [1, 2, 4, 8]) for n in "qkv"],
        [vi("y", None)],
        domains=["com.microsoft"],
    )
    assert _seen(check_tensorrt(m, "10.13")) == [("error", "custom-domain", "att")]
    # from 10.14 the ONNX Attention importer takes it, with another meaning (ONNX Attention takes
    # Q, K, V; com.microsoft's a packed input and its weights): an error (test_h126_trt_namesakes)
    assert _seen(check_tensorrt(m, "10.14")) == [("error", "custom-domain", "att")]


def test_local_function_named_like_a_builtin_op_is_the_builtin_op():
    """The parser takes the Relu importer before the model's function `local::Relu`: the
    function's body (an Einsum TensorRT refuses) is never imported."""
    fn = helper.make_function(
        "local",
        "Relu",
        ["a"],
        ["b"],
        [helper.make_node("Einsum", ["a", "a"], ["b"], name="e", equation="IJ,IJ->IJ")],
        [helper.make_opsetid("", 17)],
    )
    call = helper.make_node("Relu", ["x"], ["y"], name="call", domain="local")
    m = model([call], [vi("x", [2, 3])], [vi("y", [2, 3])], domains=["local"], functions=[fn])
    found = check_tensorrt(m, 10)
    assert _seen(found) == [("warning", "custom-domain", "call")]
    assert "the model's function local::Relu is not used" in found[0].message
    # a function named like no ONNX op is still inlined and its body judged
    fn.name = "Block"
    call.op_type = "Block"
    m = model([call], [vi("x", [2, 3])], [vi("y", [2, 3])], domains=["local"], functions=[fn])
    assert [f.rule for f in check_tensorrt(m, 10)] == ["unsupported-attribute"]


@pytest.mark.realmodel
def test_ppocrv6_det_contrib_gelus_pass_the_tensorrt_check():
    """ort-fusions makes PP-OCRv6 det's 13 erf-GELUs com.microsoft Gelu: TensorRT's parser
    imports each with its Gelu importer, so no finding names one (13 plugin errors before)."""
    out = graphopt.optimize(onnx.load(str(fetch_model("ppocrv6_det"))), "ort-fusions")
    gelus = {n.name for n in out.graph.node if (n.domain, n.op_type) == ("com.microsoft", "Gelu")}
    assert len(gelus) == 13
    found = check_tensorrt(out, 10)
    assert [f for f in found if f.node in gelus] == []


# -- 2. If outputs with a dimension known on one side only --------------------------------------


def _if_model(cond_inputs: list, cond_nodes: list, cond: str) -> onnx.ModelProto:  # type: ignore[type-arg]
    """If cond then x ([1, n]) else a constant [1, 2]."""
    then = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"], name="same")], "t", [], [vi("t", [1, None])]
    )
    zeros = numpy_helper.from_array(np.zeros((1, 2), np.float32))
    other = helper.make_graph(
        [helper.make_node("Constant", [], ["e"], name="zeros", value=zeros)],
        "e",
        [],
        [vi("e", [1, None])],
    )
    pick = helper.make_node("If", [cond], ["y"], name="pick", then_branch=then, else_branch=other)
    inputs = [vi("x", [1, "n"]), *cond_inputs]
    return model([*cond_nodes, pick], inputs, [vi("y", [1, None])])


def test_if_dimension_known_on_one_side_only_is_a_warning_before_10_11():
    m = _if_model([vi("c", [], TensorProto.BOOL)], [], "c")
    onnx.checker.check_model(m, full_check=True)
    for version in ("10.3", "10.10"):
        found = check_tensorrt(m, version, shapes={"x": None})
        assert _seen(found) == [("warning", "if-branches", "pick")]
        message = found[0].message
        assert "then_branch output 't' is [1, n] and else_branch output 'e' [1, 2]" in message
        assert f"TensorRT {version} needs the same shape" in message and "reads 'c'" in message
        assert "dimension 1 is known on one side only" in message
    for version in ("10.11", "10", "11"):  # the same rank suffices
        assert check_tensorrt(m, version, shapes={"x": None}) == []


def test_if_dimension_known_on_one_side_only_on_a_build_time_condition_is_fine():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Size", ["s"], ["n"], name="rank"),
        helper.make_node("Equal", ["n", "two"], ["c"], name="eq"),
    ]
    m = _if_model([], nodes, "c")
    m.graph.initializer.append(numpy_helper.from_array(np.array(2, np.int64), "two"))
    assert check_tensorrt(m, "10.3", shapes={"x": None}) == []
