"""fp16_model: an attention mask of float32's lowest that a model makes by Cast from another
type (a double -3.4e38, a bfloat16 -3.38e38) keeps what carries it to the Softmax float32, as
one of a float32 constant does (H220; 0a856e5's _block_masked_softmax looked for float32
constants only). The Cast and the Where reading it stayed float32 (865e3c2), but the Add and
the Softmax took the mask as float16 -inf: a fully masked row was NaN, where float32 gives a
uniform row (onnx's reference implementation, float16 computed as float16; onnxruntime hides
it)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.reference import ReferenceEvaluator

from graphopt.backends.tensorrt import fp16_model

LOWEST = {
    "double": nh.from_array(np.float64(-3.4e38), "neg"),
    "bfloat16": h.make_tensor("neg", T.BFLOAT16, [], [-3.38e38]),
    "float": nh.from_array(np.float32(-3.4e38), "neg"),  # (held before)
}


@pytest.mark.parametrize("kind", list(LOWEST))
def test_a_mask_cast_from_another_type_keeps_a_fully_masked_row_uniform(kind: str) -> None:
    vi = h.make_tensor_value_info
    nodes = [
        h.make_node("Cast", ["neg"], ["negf"], to=T.FLOAT),
        h.make_node("Where", ["keep", "zero", "negf"], ["mask"]),
        h.make_node("Add", ["s", "mask"], ["sm"]),
        h.make_node("Softmax", ["sm"], ["y"], axis=-1),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [vi("s", T.FLOAT, [2, 4]), vi("keep", T.BOOL, [2, 4])],
        [vi("y", T.FLOAT, [2, 4])],
        initializer=[nh.from_array(np.float32(0), "zero"), LOWEST[kind]],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {
        "s": np.float32([[1, 2, 3, 4], [1, 2, 3, 4]]),
        "keep": np.array([[1, 1, 0, 0], [0, 0, 0, 0]], bool),  # the second row: all masked
    }
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = ReferenceEvaluator(half).run(None, feeds)[0]
    np.testing.assert_allclose(want[1], 0.25)
    np.testing.assert_allclose(got, want, rtol=1e-6)
