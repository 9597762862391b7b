"""fp16_model: an attention mask of float32's lowest made in one graph and softmaxed in an
If/Loop/Scan body of it (at any depth) keeps what carries it float32, on both sides of the
body boundary (H220; 3442829 followed masks in each graph on its own and left this). Before,
the branch's Add and Softmax read the main graph's Where(keep, 0, -3.4e38) as float16 -inf:
a fully masked row was NaN, where float32 gives a uniform row (onnx's reference
implementation, float16 computed as float16; onnxruntime hides it)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.reference import ReferenceEvaluator

from graphopt.backends.tensorrt import fp16_model

vi = h.make_tensor_value_info


def _softmaxing(name: str) -> onnx.GraphProto:
    return h.make_graph(
        [
            h.make_node("Add", ["s", "mask"], [f"{name}_sm"]),
            h.make_node("Softmax", [f"{name}_sm"], [f"{name}_y"], axis=-1),
        ],
        name,
        [],
        [vi(f"{name}_y", T.FLOAT, [2, 4])],
    )


def _plain(name: str) -> onnx.GraphProto:
    return h.make_graph(
        [h.make_node("Softmax", ["s"], [f"{name}_y"], axis=-1)],
        name,
        [],
        [vi(f"{name}_y", T.FLOAT, [2, 4])],
    )


def _model(nested: bool) -> onnx.ModelProto:
    then = _softmaxing("t")
    if nested:  # the then branch holds an If whose then branch softmaxes
        inner = h.make_node(
            "If", ["b"], ["in_y"], then_branch=_softmaxing("a"), else_branch=_plain("c")
        )
        then = h.make_graph([inner], "then", [], [vi("in_y", T.FLOAT, [2, 4])])
    nodes = [
        h.make_node("Where", ["keep", "zero", "lowest"], ["mask"]),
        h.make_node("If", ["b"], ["y"], then_branch=then, else_branch=_plain("e")),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [vi("s", T.FLOAT, [2, 4]), vi("keep", T.BOOL, [2, 4]), vi("b", T.BOOL, [])],
        [vi("y", T.FLOAT, [2, 4])],
        initializer=[
            nh.from_array(np.float32(0), "zero"),
            nh.from_array(np.float32(-3.4e38), "lowest"),
        ],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize("nested", [False, True], ids=["if-branch", "if-in-if-branch"])
def test_a_mask_made_outside_keeps_a_fully_masked_row_uniform(nested: bool) -> None:
    model = _model(nested)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    for b in (True, False):
        feeds = {
            "s": np.float32([[1, 2, 3, 4], [1, 2, 3, 4]]),
            "keep": np.array([[1, 1, 0, 0], [0, 0, 0, 0]], bool),  # row 2: all masked
            "b": np.array(b),
        }
        want = ReferenceEvaluator(model).run(None, feeds)[0]
        got = ReferenceEvaluator(half).run(None, feeds)[0]
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
