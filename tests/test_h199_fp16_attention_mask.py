"""fp16_model (graphopt.backends.tensorrt), H199: an attention mask of float32's lowest value
(-3.4e38, float16 has no such value: -inf) keeps what carries it to Softmax or to Attention's
attn_mask (opset 23) float32.

Checked against the float32 model in onnxruntime and in onnx's reference implementation,
which computes float16 ops in float16 (onnxruntime's CPU kernels compute them in float32 and
hide -inf - -inf); inputs are fixed signals (np.linspace, sin, cos), with one query row that
the mask masks fully."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model

B, H, S, D = 1, 2, 4, 8
LOWEST = float(np.finfo(np.float32).min)  # what torch exports: torch.finfo(torch.float32).min
# row 2 is masked fully; row 0 and 1 in part
KEEP = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool)
Q = np.sin(np.linspace(0.0, 6.0, B * H * S * D, dtype=np.float32)).reshape(B, H, S, D)
K = np.cos(np.linspace(0.0, 5.0, B * H * S * D, dtype=np.float32)).reshape(B, H, S, D)
V = np.linspace(-1.0, 1.0, B * H * S * D, dtype=np.float32).reshape(B, H, S, D)


def _info(name: str, shape: list[int], dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _mask_nodes(kind: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes writing `mask` (S x S) from the input `keep`: 0 where kept, float32's lowest
    where not; `where`: Where(keep, 0, lowest); `mul`: (1 - Cast(keep)) * lowest, as
    transformers' models write it."""
    consts = [
        numpy_helper.from_array(np.float32(0.0), "zero"),
        numpy_helper.from_array(np.float32(1.0), "one"),
        numpy_helper.from_array(np.float32(LOWEST), "lowest"),
    ]
    if kind == "where":
        return [
            helper.make_node("Where", ["keep", "zero", "lowest"], ["mask"], name="where")
        ], consts
    return [
        helper.make_node("Cast", ["keep"], ["keep_f"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "keep_f"], ["drop"], name="sub"),
        helper.make_node("Mul", ["drop", "lowest"], ["mask"], name="mul"),
    ], consts


def _attention_model(kind: str, causal: int) -> onnx.ModelProto:
    nodes, consts = _mask_nodes(kind)
    nodes.append(
        helper.make_node("Attention", ["q", "k", "v", "mask"], ["y"], name="att", is_causal=causal)
    )
    graph = helper.make_graph(
        nodes,
        "g",
        [_info(n, [B, H, S, D]) for n in "qkv"] + [_info("keep", [S, S], TensorProto.BOOL)],
        [_info("y", [B, H, S, D])],
        consts,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])


def _softmax_model(kind: str) -> onnx.ModelProto:
    """y = Softmax(q @ k^T / sqrt(D) + mask) @ v, written out (as models below opset 23 are)."""
    nodes, consts = _mask_nodes(kind)
    nodes += [
        helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"], name="qk"),
        helper.make_node("Mul", ["qk", "scale"], ["scores"], name="scale"),
        helper.make_node("Add", ["scores", "mask"], ["masked"], name="add_mask"),
        helper.make_node("Softmax", ["masked"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"], name="pv"),
    ]
    consts.append(numpy_helper.from_array(np.float32(1.0 / np.sqrt(D)), "scale"))
    graph = helper.make_graph(
        nodes,
        "g",
        [_info(n, [B, H, S, D]) for n in "qkv"] + [_info("keep", [S, S], TensorProto.BOOL)],
        [_info("y", [B, H, S, D])],
        consts,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _compare(model: onnx.ModelProto) -> onnx.ModelProto:
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"q": Q, "k": K, "v": V, "keep": KEEP}
    # onnx's reference implementation: float16 ops in float16, as TensorRT runs them
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = ReferenceEvaluator(half).run(None, feeds)[0]
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-3)
    np.testing.assert_allclose(run(half, feeds)["y"], run(model, feeds)["y"], rtol=0, atol=2e-3)
    return half


def _input_types(model: onnx.ModelProto, op: str) -> list[int]:
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    types.update((v.name, v.type.tensor_type.elem_type) for v in model.graph.input)
    (node,) = [n for n in model.graph.node if n.op_type == op]
    return [types[name] for name in node.input]


@pytest.mark.parametrize("causal", [0, 1], ids=["mask", "mask-and-causal"])
@pytest.mark.parametrize("kind", ["where", "mul"])
def test_attention_with_a_mask_of_float32s_lowest_stays_float32(kind, causal):
    """The mask reached Attention as float16 -inf: the fully masked row became zeros (the
    spec flushes a row of -inf), where the float32 model's is the mean of V's rows (-0.62,
    -0.59, ...; onnxruntime gives 0 for both)."""
    half = _compare(_attention_model(kind, causal))
    assert _input_types(half, "Attention") == [TensorProto.FLOAT] * 4


@pytest.mark.parametrize("kind", ["where", "mul"])
def test_softmax_of_scores_plus_a_mask_of_float32s_lowest_stays_float32(kind):
    """Add(scores, -inf) then Softmax in float16: NaN for the fully masked row (uniform, 0.25
    each, in float32). The Add and the Softmax now stay float32; the MatMuls stay float16."""
    half = _compare(_softmax_model(kind))
    assert _input_types(half, "Softmax") == [TensorProto.FLOAT]
    qk = next(n for n in half.graph.node if n.name == "qk")
    assert _input_types(half, "Add")[0] == TensorProto.FLOAT
    types = {v.name: v.type.tensor_type.elem_type for v in half.graph.value_info}
    assert types[qk.output[0]] == TensorProto.FLOAT16


def test_causal_attention_without_a_mask_stays_float16():
    """is_causal alone: no mask value in the model, nothing kept float32."""
    nodes = [helper.make_node("Attention", ["q", "k", "v"], ["y"], name="att", is_causal=1)]
    graph = helper.make_graph(
        nodes, "g", [_info(n, [B, H, S, D]) for n in "qkv"], [_info("y", [B, H, S, D])]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    assert _input_types(half, "Attention") == [TensorProto.FLOAT16] * 3
    feeds = {"q": Q, "k": K, "v": V}
    np.testing.assert_allclose(run(half, feeds)["y"], run(model, feeds)["y"], rtol=0, atol=2e-3)
