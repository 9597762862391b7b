"""Two If branches that each define a tensor 't' (sibling scopes may) and take Hardmax-11 of
it on axis 1: then-branch t [2, 12], else-branch t [2, 3, 4]. The Hardmax adapter read the
inferred dims by name, so the else branch's Hardmax was taken as rank 2 (axis 1 the last) and
kept its last axis: 6 ones where Hardmax-11 gives 2 (found by the final review of ecb0339).
Now such a name's dims are not known: at 14 every Hardmax is flattened (exact), at 13 the
conversion is refused (a 0 dim could not be restored)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from graphopt.errors import OpsetConversionError
from graphopt.ir.opset_conversion import convert_opset


def _branch(name: str, shape: list[int], out: str) -> onnx.GraphProto:
    s = helper.make_tensor(f"{name}_s", TensorProto.INT64, [len(shape)], shape)
    return helper.make_graph(
        [
            helper.make_node("Constant", [], [f"{name}_s"], value=s),
            helper.make_node("Reshape", ["x", f"{name}_s"], ["t"]),
            helper.make_node("Hardmax", ["t"], ["u"], axis=1),
            helper.make_node("Reshape", ["u", "flat"], [out]),
        ],
        name,
        [],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [24])],
    )


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node(
                "If",
                ["c"],
                ["y"],
                then_branch=_branch("then", [2, 12], "o1"),
                else_branch=_branch("else", [2, 3, 4], "o2"),
            )
        ],
        "g",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [24]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [24])],
        [helper.make_tensor("flat", TensorProto.INT64, [1], [-1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto, c: bool, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"c": np.array(c), "x": x})[0]


@pytest.mark.parametrize("version", [14, 19])
def test_each_branch_keeps_its_one_hot(version: int) -> None:
    model = _model()
    converted = convert_opset(model, version)
    x = np.random.default_rng(0).standard_normal(24).astype(np.float32)
    for c in (True, False):
        np.testing.assert_array_equal(_run(converted, c, x), _run(model, c, x))


def test_at_13_it_is_refused() -> None:
    with pytest.raises(OpsetConversionError, match="Hardmax changes meaning at opset 13"):
        convert_opset(_model(), 13)
