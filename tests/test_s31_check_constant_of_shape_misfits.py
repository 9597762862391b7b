"""`graphopt check` on a ConstantOfShape ONNX's op does not allow: a `value` of other than
one element ("The value attribute of ConstantOfShape must be a single-element tensor"), or a
constant shape with a negative size ("shape input tensor must have non-negative elements").
onnxruntime refuses both, and check said "0 errors". Each is now an onnx-invalid error."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.trt_check import check_tensorrt


def _fill(value: np.ndarray, shape: list[int]) -> onnx.ModelProto:
    nodes = [
        helper.make_node(
            "ConstantOfShape", ["s"], ["c"], name="fill", value=numpy_helper.from_array(value)
        ),
        helper.make_node("Add", ["x", "c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.int64(shape), "s")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


MISFITS = {
    "two-values": (
        _fill(np.float32([1, 2]), [2]),
        "attribute 'value' has shape [2], where ONNX's ConstantOfShape takes a tensor of one "
        "element and one dim (shape [1])",
    ),
    "no-values": (_fill(np.zeros(0, np.float32), [2]), "attribute 'value' has shape [0], where"),
    "scalar": (_fill(np.float32(1), [2]), "attribute 'value' has shape [], where"),
    "negative-size": (_fill(np.float32([1]), [-3]), "its shape 's' is [-3], a negative size"),
}


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_onnxruntime_refuses_it(case) -> None:
    """What the finding is for (not graphopt's code: passes on the parent too)."""
    with pytest.raises(Exception, match=r"ConstantOfShape|non-negative|one-dim"):
        ort.InferenceSession(
            MISFITS[case][0].SerializeToString(), providers=["CPUExecutionProvider"]
        )


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_check_reports_it(case) -> None:
    model, said = MISFITS[case]
    findings = [f for f in check_tensorrt(model) if f.severity == "error"]
    assert [(f.rule, f.node) for f in findings] == [("onnx-invalid", "fill")]
    assert findings[0].message.startswith(said)
    assert findings[0].message.endswith("the model is not valid ONNX (onnxruntime refuses it)")


@pytest.mark.parametrize("shape", [[2], [1]])
def test_a_fitting_one_is_no_finding(shape) -> None:
    """Controls (pass on the parent too): a value of shape [1], filling [2] or [1]."""
    value = np.float32([1])
    model = _fill(value, shape)
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [f for f in check_tensorrt(model) if f.rule == "onnx-invalid"] == []
