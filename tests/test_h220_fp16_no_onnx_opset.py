"""fp16_model and ops of other domains than ONNX's (H220).

An op of ai.onnx.preview.training (Adagrad, as in onnx's test_adagrad / test_adam /
test_momentum node cases) that ONNX types float32 and double only stays float32, as a
standard op typed so does (`_float32_typed_ops` read the default domain only): with an ONNX
opset imported, the converter fed it float16 ('R typestr: T1, has unsupported type:
tensor(float16)'); without one, its Casts made a model the checker refused ("No opset import
for domain ''"). A model of ops onnx does not know and no ONNX opset, which the converter's
Casts would need, is refused with a one-line BackendError."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from graphopt.backends.tensorrt import fp16_model
from graphopt.errors import BackendError


def _adagrad(with_onnx: bool) -> onnx.ModelProto:
    vi = h.make_tensor_value_info
    node = h.make_node("Adagrad", ["r", "t", "x", "g", "h"], ["x_new", "h_new"])
    node.domain = "ai.onnx.preview.training"
    graph = h.make_graph(
        [node],
        "g",
        [
            vi("r", T.FLOAT, []),
            vi("t", T.INT64, []),
            vi("x", T.FLOAT, [2]),
            vi("g", T.FLOAT, [2]),
            vi("h", T.FLOAT, [2]),
        ],
        [vi("x_new", T.FLOAT, [2]), vi("h_new", T.FLOAT, [2])],
    )
    opsets = [h.make_opsetid("ai.onnx.preview.training", 1)]
    if with_onnx:
        opsets.append(h.make_opsetid("", 17))
    return h.make_model(graph, opset_imports=opsets)


@pytest.mark.parametrize("with_onnx", [False, True], ids=["training-only", "with-onnx"])
def test_a_training_op_typed_float32_stays_float32(with_onnx: bool) -> None:
    model = _adagrad(with_onnx)
    onnx.checker.check_model(model, full_check=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    assert [n.op_type for n in half.graph.node] == ["Adagrad"]


def test_unknown_ops_and_no_onnx_opset_are_refused() -> None:
    vi = h.make_tensor_value_info
    node = h.make_node("MyPlugin", ["x"], ["y"], domain="example.plugins")
    graph = h.make_graph([node], "g", [vi("x", T.FLOAT, [2])], [vi("y", T.FLOAT, [2])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("example.plugins", 1)])
    with pytest.raises(BackendError, match=r"imports no ONNX opset \(only example\.plugins\)"):
        fp16_model(model)
