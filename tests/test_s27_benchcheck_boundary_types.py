"""`check`: a graph input or output that declares no tensor element type is an error.

TensorRT's parser makes each network input and output of the element type its declaration
names (importInput; convertDtype of each graph output in ModelImporter::importModel,
onnx-tensorrt 10.1 GA) and refuses one it cannot convert: a sequence, optional, map or sparse
input or output (read as UNDEFINED), or an output declared by name alone ("Failed to convert
ONNX date type to TensorRT data type"). check said "0 errors" for them: a sequence input
handed on to a sequence output was only "input 's' has dynamic dimensions [unknown rank]; the
engine needs an optimization profile", a warning no profile answers, and an untyped output
was clean."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt
from graphopt.cli import main

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _errors(model: onnx.ModelProto) -> list[str]:
    return [str(f) for f in check_tensorrt(model)]


def test_a_sequence_input_and_output_are_errors() -> None:
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2, 3])
    out = helper.make_tensor_sequence_value_info("y", TensorProto.FLOAT, [2, 3])
    model = _model([helper.make_node("Identity", ["s"], ["y"])], [seq], [out])
    assert _errors(model) == [
        "error: [dtype] graph input 's' is a sequence, not a tensor: TensorRT's network inputs "
        "are tensors",
        "error: [dtype] graph output 'y' is a sequence, not a tensor: TensorRT's network "
        "outputs are tensors",
    ]


def test_an_optional_input_is_an_error() -> None:
    tensor = helper.make_tensor_type_proto(TensorProto.FLOAT, [1, 3])
    opt = helper.make_value_info("o", helper.make_optional_type_proto(tensor))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    model = _model([helper.make_node("OptionalGetElement", ["o"], ["y"])], [opt], [y], opset=18)
    assert _errors(model)[0] == (
        "error: [dtype] graph input 'o' is an optional, not a tensor: TensorRT's network inputs "
        "are tensors"
    )


@pytest.mark.parametrize(
    "output",
    [
        onnx.ValueInfoProto(name="y"),
        helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None),
    ],
    ids=["no-type", "undefined"],
)
def test_an_output_without_an_element_type_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: onnx.ValueInfoProto
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model([helper.make_node("Relu", ["x"], ["y"])], [X], [output]), path)
    assert main(["check", str(path), "--no-progress"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "error: [dtype] graph output 'y' declares no element type: TensorRT's parser gives a "
        "network output the type its declaration names and refuses one without (declare it, "
        "e.g. with onnx.shape_inference.infer_shapes)",
        f"{path}: TensorRT 10.15: 1 error, 0 warnings",
    ]


def test_tensor_inputs_and_outputs_of_any_shape_are_fine() -> None:
    """(control: passes on the parent too) a typed output without a shape is no finding."""
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    assert _errors(_model([helper.make_node("Relu", ["x"], ["y"])], [X], [y])) == []
