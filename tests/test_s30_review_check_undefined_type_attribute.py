"""`graphopt check` on a Cast whose `to` (or an EyeLike's dtype, a QuantizeLinear's
output_dtype) names an element type ONNX does not define (99): onnx's inference ("Attribute
to does not specify a valid type") and onnxruntime refuse the model, and check said
"0 errors" (6ece3e9 looked at graph inputs and outputs, f0371f5 at attribute types, not at
the type an INT attribute names). It is now an onnx-invalid error naming the attribute."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _cast_to(to: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["t"], to=to),
            helper.make_node("Cast", ["t"], ["y"], to=1),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _eye_like(dtype: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("EyeLike", ["x"], ["e"], dtype=dtype),
            helper.make_node("Cast", ["e"], ["y"], to=1),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_onnxruntime_refuses_the_model() -> None:
    """What the finding is for (not graphopt's code: passes on the parent too)."""
    with pytest.raises(Exception, match="does not specify a valid type"):
        ort.InferenceSession(_cast_to(99).SerializeToString())


@pytest.mark.parametrize(
    ("model", "said"),
    [
        (_cast_to(99), "Cast node writing 't': attribute 'to' names element type 99"),
        (_eye_like(1000), "EyeLike node writing 'e': attribute 'dtype' names element type 1000"),
    ],
    ids=["cast-99", "eyelike-1000"],
)
def test_check_reports_it(tmp_path, capsys, model, said) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "error: [onnx-invalid]" in out and said in out and "which ONNX does not define" in out
    assert "1 error" in out


def test_a_defined_type_passes(tmp_path, capsys) -> None:
    """Control (passes on the parent too)."""
    path = tmp_path / "m.onnx"
    onnx.save(_cast_to(TensorProto.FLOAT16), path)
    assert main(["check", str(path)]) == 0
    assert "0 errors" in capsys.readouterr().out
