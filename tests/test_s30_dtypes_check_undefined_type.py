"""`graphopt check` on a model whose graph input or output declares an element type ONNX does
not define (99, -5: onnx.checker says "Invalid tensor data type 99") said "0 errors": the
type's name was its number, which no dtype rule knew. It is now an onnx-invalid error naming
the input or output; a declared type of ONNX's (float8, UNDEFINED) is judged as before."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt, errors
from graphopt.cli import main


def _identity(input_type: int, output_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    graph.input[0].type.tensor_type.elem_type = input_type
    graph.output[0].type.tensor_type.elem_type = output_type
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("elem", [99, -5, 1000])
def test_an_undefined_input_type_is_an_onnx_invalid_error(elem: int) -> None:
    found = errors(check_tensorrt(_identity(elem)))
    assert [(f.rule, f.message.split(",")[0]) for f in found] == [
        ("onnx-invalid", f"graph input 'x' has element type {elem}")
    ]
    assert "which ONNX does not define" in found[0].message


def test_an_undefined_output_type_is_an_onnx_invalid_error() -> None:
    found = errors(check_tensorrt(_identity(TensorProto.FLOAT, 99)))
    assert [f.rule for f in found] == ["onnx-invalid"]
    assert "graph output 'y' has element type 99" in found[0].message


def test_defined_types_are_judged_as_before() -> None:
    assert errors(check_tensorrt(_identity(TensorProto.FLOAT))) == []
    (undefined,) = errors(check_tensorrt(_identity(TensorProto.UNDEFINED)))
    assert undefined.rule == "dtype" and "declares no element type" in undefined.message


def test_check_reports_it(tmp_path, capsys) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_identity(99), path)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "[onnx-invalid] graph input 'x' has element type 99" in out
    assert "1 error," in out
