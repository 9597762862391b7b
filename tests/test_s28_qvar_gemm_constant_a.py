"""Gemm whose first input A is the constant weight and B the activation (Y = α·W·X + β·C, as
MatMul(W, X) is quantized) and Gemm of two activations: placement read only a Gemm's A as an
activation, so Gemm(W, X) got no Q/DQ at all (alone in a model: 'nothing to quantize: none of
the 1 Conv/ConvTranspose/Gemm/MatMul of the main graph reads a float activation', which it
does), and Gemm(X1, X2) got one on X1 only (TensorRT runs a Gemm int8 only when both inputs
are). Now B is the activation and W an int8 weight per tensor (as MatMul's constant A:
`MATMUL_A_WEIGHT_AXIS`; C stays float), and two activations are both quantized."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.quant.placement import plan

F = onnx.TensorProto.FLOAT


def _gemm(
    inputs: list[onnx.ValueInfoProto], weights: dict[str, np.ndarray], **attrs: object
) -> onnx.ModelProto:
    """y [10, 3] = Gemm(a, b[, c]) with `weights` as initializers."""
    names = ["a", "b", "c"] if "c" in weights else ["a", "b"]
    graph = helper.make_graph(
        [helper.make_node("Gemm", names, ["y"], name="gemm", **attrs)],
        "g",
        inputs,
        [helper.make_tensor_value_info("y", F, [10, 3])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _constant_a(trans_a: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (16, 10) if trans_a else (10, 16)).astype(np.float32)
    return _gemm(
        [helper.make_tensor_value_info("b", F, [16, 3])],
        {"a": w, "c": rng.normal(0, 0.1, (3,)).astype(np.float32)},
        transA=trans_a,
        alpha=0.5,
    )


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)[0]


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
@pytest.mark.parametrize("trans_a", [0, 1])
def test_gemm_of_a_constant_a_quantizes_b_and_the_weight(target: str, trans_a: int) -> None:
    model = _constant_a(trans_a)
    rng = np.random.default_rng(1)
    feeds = [{"b": rng.normal(0, 1, (16, 3)).astype(np.float32)} for _ in range(4)]
    q = graphopt.quantize(model, feeds, target=target, accuracy_target=None)
    onnx.checker.check_model(q, full_check=True)
    nodes = {n.output[0]: n for n in q.graph.node}
    gemm = next(n for n in q.graph.node if n.op_type == "Gemm")
    a, b = nodes[gemm.input[0]], nodes[gemm.input[1]]
    assert a.op_type == b.op_type == "DequantizeLinear"
    weights = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    assert weights[a.input[0]].dtype == np.int8 and weights[a.input[1]].shape == ()
    assert nodes[b.input[0]].op_type == "QuantizeLinear"
    assert nodes[b.input[0]].input[0] == "b"
    assert gemm.input[2] == "c"  # the bias stays float
    for feed in feeds:
        ref, got = _run(model, feed), _run(q, feed)
        np.testing.assert_allclose(got, ref, atol=0.03 * float(np.abs(ref).max()))


def test_gemm_of_two_activations_quantizes_both() -> None:
    model = _gemm(
        [
            helper.make_tensor_value_info("a", F, [10, 16]),
            helper.make_tensor_value_info("b", F, [3, 16]),
        ],
        {},
        transB=1,
    )
    placement = plan(model, "tensorrt")
    assert placement.nodes["gemm"].activations == [0, 1]
    rng = np.random.default_rng(2)
    feeds = [
        {
            "a": rng.normal(0, 1, (10, 16)).astype(np.float32),
            "b": rng.normal(0, 1, (3, 16)).astype(np.float32),
        }
        for _ in range(4)
    ]
    q = graphopt.quantize(model, feeds, accuracy_target=None)
    quantized = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert quantized == {"a", "b"}


def test_gemm_of_an_activation_a_is_as_before() -> None:
    rng = np.random.default_rng(3)
    model = _gemm(
        [helper.make_tensor_value_info("a", F, [10, 16])],
        {"b": rng.normal(0, 0.3, (3, 16)).astype(np.float32)},
        transB=1,
    )
    p = plan(model, "tensorrt").nodes["gemm"]
    assert (p.activations, p.weights) == ([0], {1: 0})
