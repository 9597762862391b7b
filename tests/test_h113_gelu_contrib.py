"""GELU below opset 20 in the ort-fusions pipeline (com.microsoft Gelu / FastGelu) and jax's
tanh-GELU form (x·(x·(0.044715·x)), magika's tf2onnx export) in fuse-activations.

Found on real models: PP-OCRv6's 13 erf-GELUs (opset 11) stayed five nodes each in ort-fusions,
where onnxruntime's own GeluFusion makes com.microsoft Gelu at ORT_ENABLE_EXTENDED: without a
standard Gelu, fuse-activations refused, fold-batchnorm then folded GELU's ½ into the next Conv,
and nothing matched afterwards. magika 1.0.3's two tanh-GELUs write x³ as x·(x·(0.044715·x)),
a form no TanhTerm alternative had (even with upgrade_opset nothing fused).
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import compare
from graphopt.realmodels import fetch_model, model_inputs


def _const(name: str, value: float) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.array(value, np.float32))
    )


def _ops(model: onnx.ModelProto) -> collections.Counter[str]:
    return collections.Counter(n.op_type for n in model.graph.node)


def _ppocrv6_erf_gelu(opset: int) -> onnx.ModelProto:
    """Conv → ½·x·(1 + erf(x/√2)) → 1x1 Conv, as paddle2onnx writes PP-OCRv6's GELU."""
    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b2")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
        _const("sqrt2", 1.4142135381698608),
        helper.make_node("Div", ["c", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        _const("one", 1.0),
        helper.make_node("Add", ["e", "one"], ["a"]),
        helper.make_node("Mul", ["c", "a"], ["m"]),
        _const("half", 0.5),
        helper.make_node("Mul", ["m", "half"], ["g"]),
        helper.make_node("Conv", ["g", "w2", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "ppocrv6_gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [w1, w2, b2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _magika_tanh_gelu(opset: int) -> onnx.ModelProto:
    """MatMul + bias → x·(½·(1 + tanh(√(2/π)·(x + x·(x·(0.044715·x)))))), magika's jax form."""
    rng = np.random.default_rng(4)
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((1, 1, 8)).astype(np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["h"]),
        _const("c", 0.044714998453855515),
        helper.make_node("Mul", ["c", "h"], ["m0"]),
        helper.make_node("Mul", ["h", "m0"], ["m1"]),
        helper.make_node("Mul", ["h", "m1"], ["m2"]),
        helper.make_node("Add", ["h", "m2"], ["s"]),
        _const("k", 0.7978845834732056),
        helper.make_node("Mul", ["k", "s"], ["m3"]),
        helper.make_node("Tanh", ["m3"], ["t"]),
        _const("one", 1.0),
        helper.make_node("Add", ["one", "t"], ["a"]),
        _const("half", 0.5),
        helper.make_node("Mul", ["half", "a"], ["m4"]),
        helper.make_node("Mul", ["h", "m4"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "magika_gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 8])],
        [w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _same_outputs(original: onnx.ModelProto, out: onnx.ModelProto, shape: tuple[int, ...]):
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32) * 2
    for level in ("disable", "all"):
        for d in compare(original, out, {"x": x}, level=level):
            assert not d.exceeds(1e-4, 1e-5), (level, d)


def test_ort_fusions_makes_contrib_gelu_before_the_half_is_folded():
    model = _ppocrv6_erf_gelu(11)
    out = graphopt.optimize(model, "ort-fusions")
    ops = _ops(out)
    assert ops["Gelu"] == 1 and ops["Erf"] == 0, ops
    gelu = next(n for n in out.graph.node if n.op_type == "Gelu")
    assert gelu.domain == "com.microsoft"
    onnx.checker.check_model(out, full_check=True)
    _same_outputs(model, out, (1, 3, 8, 8))


def test_ort_fusions_makes_fastgelu_of_the_jax_form():
    model = _magika_tanh_gelu(15)
    out = graphopt.optimize(model, "ort-fusions")
    ops = _ops(out)
    assert ops["FastGelu"] == 1 and ops["Tanh"] == 0 and ops["Mul"] == 0, ops
    onnx.checker.check_model(out, full_check=True)
    _same_outputs(model, out, (2, 5, 16))


@pytest.mark.parametrize("pipeline", ["default", "tensorrt"])
def test_fuse_activations_makes_tanh_gelu_of_the_jax_form_at_opset_20(pipeline):
    model = _magika_tanh_gelu(20)
    out = graphopt.optimize(model, pipeline)
    gelus = [n for n in out.graph.node if n.op_type == "Gelu"]
    assert len(gelus) == 1 and gelus[0].domain == "", _ops(out)
    assert helper.get_attribute_value(gelus[0].attribute[0]) == b"tanh"
    assert _ops(out)["Tanh"] == 0
    _same_outputs(model, out, (2, 5, 16))


def test_standard_gelu_at_opset_20_is_left_to_fuse_activations():
    """At opset 20 ort-fusions keeps the standard Gelu (no com.microsoft one on top)."""
    out = graphopt.optimize(_ppocrv6_erf_gelu(20), "ort-fusions")
    gelus = [n for n in out.graph.node if n.op_type == "Gelu"]
    assert [n.domain for n in gelus] == [""], _ops(out)


@pytest.mark.realmodel
def test_ppocrv6_det_gelus_fuse_in_ort_fusions():
    """All 13 erf-GELUs of PP-OCRv6 det become com.microsoft Gelu (onnxruntime's GeluFusion
    finds the same 13); 195 → 156 nodes; same outputs on real photographs."""
    original = onnx.load(str(fetch_model("ppocrv6_det")))
    out = graphopt.optimize(original, "ort-fusions")
    ops = _ops(out)
    assert ops["Gelu"] == 13 and ops["Erf"] == 0, ops
    for feed in model_inputs("ppocrv6_det", 2):
        for d in compare(original, out, feed, level="disable"):
            assert not d.exceeds(1e-4, 1e-5), d
