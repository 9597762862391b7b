"""fp16_model: an attention mask of float32's lowest value (-3.4e38, -inf in float16) that a
Softmax in an If branch (or in an If nested in one) reads keeps what carries it float32, as in
the main graph (H199 left bodies out: the fully masked row was NaN in onnx's reference
implementation, which computes float16 in float16 as TensorRT does).

Inputs are tests/test_h199_fp16_attention_mask.py's fixed signals; row 2 is masked fully."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model
from tests.test_h199_fp16_attention_mask import KEEP, B, D, H, K, Q, S, V, _info

LOWEST = float(np.finfo(np.float32).min)
OUT = [B, H, S, D]


def _attention_branch(p: str, kind: str) -> onnx.GraphProto:
    """y = Softmax(q @ k^T · s + mask) @ v with the mask made in the branch from `keep`."""
    consts = [
        numpy_helper.from_array(np.float32(0.0), f"{p}zero"),
        numpy_helper.from_array(np.float32(1.0), f"{p}one"),
        numpy_helper.from_array(np.float32(LOWEST), f"{p}lowest"),
        numpy_helper.from_array(np.float32(1.0 / np.sqrt(D)), f"{p}scale"),
    ]
    if kind == "where":
        mask = [helper.make_node("Where", ["keep", f"{p}zero", f"{p}lowest"], [f"{p}mask"])]
    else:
        mask = [
            helper.make_node("Cast", ["keep"], [f"{p}keep_f"], to=TensorProto.FLOAT),
            helper.make_node("Sub", [f"{p}one", f"{p}keep_f"], [f"{p}drop"]),
            helper.make_node("Mul", [f"{p}drop", f"{p}lowest"], [f"{p}mask"]),
        ]
    nodes = [
        *mask,
        helper.make_node("Transpose", ["k"], [f"{p}kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", f"{p}kt"], [f"{p}qk"]),
        helper.make_node("Mul", [f"{p}qk", f"{p}scale"], [f"{p}scores"]),
        helper.make_node("Add", [f"{p}scores", f"{p}mask"], [f"{p}masked"]),
        helper.make_node("Softmax", [f"{p}masked"], [f"{p}p"], axis=-1),
        helper.make_node("MatMul", [f"{p}p", "v"], [f"{p}y"]),
    ]
    for i, n in enumerate(nodes):
        n.name = f"{p}{n.op_type.lower()}{i}"
    return helper.make_graph(nodes, p.rstrip("_"), [], [_info(f"{p}y", OUT)], consts)


def _if(p: str, then: onnx.GraphProto, other: onnx.GraphProto, cond: str) -> onnx.NodeProto:
    return helper.make_node(
        "If", [cond], [f"{p}y"], name=f"{p}if", then_branch=then, else_branch=other
    )


def _model(kind: str, nested: bool) -> onnx.ModelProto:
    if nested:  # the outer If's then branch holds an If whose branches hold the attention
        inner = _if("in_", _attention_branch("a_", kind), _attention_branch("b_", kind), "c2")
        then = helper.make_graph([inner], "then", [], [_info("in_y", OUT)])
    else:
        then = _attention_branch("t_", kind)
    main = _if("", then, _attention_branch("e_", kind), "c")
    graph = helper.make_graph(
        [main],
        "g",
        [_info(n, OUT) for n in "qkv"]
        + [_info("keep", [S, S], TensorProto.BOOL)]
        + [_info(c, [], TensorProto.BOOL) for c in ("c", "c2")],
        [_info("y", OUT)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference casts -3.4e38 to -inf
@pytest.mark.parametrize("nested", [False, True], ids=["if-branch", "if-in-if-branch"])
@pytest.mark.parametrize("kind", ["where", "mul"])
def test_a_mask_softmaxed_in_a_body_stays_float32(kind: str, nested: bool) -> None:
    model = _model(kind, nested)
    onnx.checker.check_model(model, full_check=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    for c in (True, False):
        feeds = {"q": Q, "k": K, "v": V, "keep": KEEP, "c": np.array(c), "c2": np.array(c)}
        want = ReferenceEvaluator(model).run(None, feeds)[0]
        got = ReferenceEvaluator(half).run(None, feeds)[0]
        assert np.isfinite(want).all()
        assert np.isfinite(got).all(), "the fully masked row is NaN in float16"
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-3)
        np.testing.assert_allclose(run(half, feeds)["y"], run(model, feeds)["y"], atol=2e-3)
