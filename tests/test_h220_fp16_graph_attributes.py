"""fp16_model: a node with a graph attribute that is not an If/Loop/Scan body (onnx 1.20's
ai.onnx.preview FlexAttention with score_mod or prob_mod) stays float32, graph and all (H220).
The converter made Q, K and V float16 but left the graph's input float32, an invalid model:
'[ShapeInferenceError] Attribute score_mod input(0) type mismatch. Expected 1, got 10' (so
for onnx's own test_flexattention_score_mod, _prob_mod, _causal_mask, _soft_cap and
_relative_positional node cases)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.reference import ReferenceEvaluator

from graphopt.backends.tensorrt import fp16_model


def _model(mod: str | None) -> onnx.ModelProto:
    vi = h.make_tensor_value_info
    attributes = {}
    if mod is not None:  # a soft cap: 2 * tanh(s / 2)
        attributes[mod] = h.make_graph(
            [
                h.make_node("Div", ["s", "two"], ["d"]),
                h.make_node("Tanh", ["d"], ["t"]),
                h.make_node("Mul", ["t", "two"], ["s_out"]),
            ],
            mod,
            [vi("s", T.FLOAT, None)],
            [vi("s_out", T.FLOAT, None)],
            initializer=[nh.from_array(np.float32(2.0), "two")],
        )
    node = h.make_node(
        "FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview", **attributes
    )
    graph = h.make_graph(
        [node],
        "g",
        [vi(n, T.FLOAT, [1, 2, 4, 8]) for n in "QKV"],
        [vi("Y", T.FLOAT, [1, 2, 4, 8])],
    )
    opsets = [h.make_opsetid("", 26), h.make_opsetid("ai.onnx.preview", 1)]
    return h.make_model(graph, opset_imports=opsets)


def _feeds() -> dict[str, np.ndarray]:
    grid = np.linspace(-2.0, 2.0, 64, dtype=np.float32).reshape(1, 2, 4, 8)
    return {"Q": grid, "K": grid[..., ::-1].copy(), "V": np.cos(grid)}


def _schema_known() -> bool:
    try:
        onnx.defs.get_schema("FlexAttention", 1, "ai.onnx.preview")
    except onnx.defs.SchemaError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _schema_known(), reason="onnx has no FlexAttention")


@pytest.mark.parametrize("mod", ["score_mod", "prob_mod"])
def test_flexattention_with_a_graph_attribute_stays_float32(mod: str) -> None:
    model = _model(mod)
    onnx.checker.check_model(model, full_check=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    want = ReferenceEvaluator(model).run(None, _feeds())[0]
    got = ReferenceEvaluator(half).run(None, _feeds())[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # float32 all the way


def test_flexattention_without_one_still_becomes_float16() -> None:
    half = fp16_model(_model(None))
    onnx.checker.check_model(half, full_check=True)
    (node,) = [n for n in half.graph.node if n.op_type == "FlexAttention"]
    casts = [n for n in half.graph.node if n.op_type == "Cast" and n.output[0] in node.input]
    assert len(casts) == 3 and all(c.attribute[0].i == T.FLOAT16 for c in casts)
