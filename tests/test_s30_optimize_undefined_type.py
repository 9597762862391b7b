"""optimize on a model whose graph input or output declares an element type ONNX does not
define (99, -5: a damaged file; onnx.checker's full check: "Invalid tensor data type") wrote
it back as it was, exit 0: a model no runtime loads, where optimize's result is to pass the
full check. It is now refused in one line naming the input or output, nothing written (found
by the dtypes helper); UNDEFINED (0), a type left to inference, is optimized as before."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError


def _identity(input_type: int, output_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    graph.input[0].type.tensor_type.elem_type = input_type
    graph.output[0].type.tensor_type.elem_type = output_type
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(
    ("model", "said"),
    [
        (_identity(99), "graph input 'x' has element type 99"),
        (_identity(-5), "graph input 'x' has element type -5"),
        (_identity(TensorProto.FLOAT, 1000), "graph output 'y' has element type 1000"),
    ],
    ids=["input-99", "input-negative", "output-1000"],
)
def test_optimize_refuses_an_element_type_onnx_does_not_define(tmp_path, capsys, model, said):
    with pytest.raises(LoadError, match=said):
        graphopt.optimize(model)
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, path)
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and "which ONNX does not define" in err
    assert not out.exists()


def test_an_undefined_type_left_to_inference_is_optimized() -> None:
    model = _identity(TensorProto.FLOAT, TensorProto.UNDEFINED)
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Relu"]
