"""`graphopt check` on a graph input that an initializer gives its default value (IR < 4
exports, `keep_initializers_as_inputs`) declared with another element type, rank or fixed
dim than the initializer has: onnxruntime refuses the model ("Data in initializer 'w' has
element type tensor(float) but usage of initializer in graph expects tensor(int64)", "Shape
of initializer w does not match"), and check, which passes such inputs by (TensorRT's parser
imports the initializer), said "0 errors". Each is now an onnx-invalid error."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.trt_check import check_tensorrt

_X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
_Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])


def _model(declared: onnx.ValueInfoProto) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        "g",
        [_X, declared],
        [_Y],
        [numpy_helper.from_array(np.float32([1, 2]), "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


MISFITS = {
    "type": (
        TensorProto.INT64,
        [2],
        "declares element type int64, but its initializer is float [2]",
    ),
    "dim": (TensorProto.FLOAT, [3], "declares shape [3], but its initializer is float [2]"),
    "rank": (TensorProto.FLOAT, [1, 2], "declares shape [1, 2], but its initializer is float [2]"),
}
FITS = {
    "same": (TensorProto.FLOAT, [2]),
    "named-dim": (TensorProto.FLOAT, ["n"]),
    "no-shape": (TensorProto.FLOAT, None),
}


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_onnxruntime_refuses_the_misfit(case) -> None:
    """What the finding is for (not graphopt's code: passes on the parent too)."""
    elem, dims, _ = MISFITS[case]
    model = _model(helper.make_tensor_value_info("w", elem, dims))
    with pytest.raises(Exception, match="initializer"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_check_reports_the_misfit(case) -> None:
    elem, dims, said = MISFITS[case]
    findings = check_tensorrt(_model(helper.make_tensor_value_info("w", elem, dims)))
    assert [(f.severity, f.rule) for f in findings] == [("error", "onnx-invalid")]
    assert findings[0].message.startswith(f"graph input 'w' {said} (its default value)")


@pytest.mark.parametrize("case", sorted(FITS))
def test_a_fitting_declaration_is_no_finding(case) -> None:
    """Controls (pass on the parent too): onnxruntime loads each."""
    model = _model(helper.make_tensor_value_info("w", *FITS[case]))
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert check_tensorrt(model) == []
