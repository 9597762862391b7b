"""A value_info entry whose element type ONNX does not define (99: a damaged file) makes the
model one onnx.checker's full check and onnxruntime refuse ("Invalid tensor data type 99"),
as the graph inputs' and outputs' of 6ece3e9 and 29e7038 do; those commits looked at the
inputs and outputs alone: optimize wrote such a model back, exit 0, and `graphopt check` said
"0 errors". Now optimize refuses it in one line and check reports it as onnx-invalid."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError


def _relu_relu(value_type: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Relu", ["t"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        value_info=[helper.make_tensor_value_info("t", value_type, [2, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_onnxruntime_refuses_the_model() -> None:
    """What the refusal is for (not graphopt's code: passes on the parent too)."""
    with pytest.raises(Exception, match="Invalid tensor data type 99"):
        ort.InferenceSession(_relu_relu(99).SerializeToString())


def test_optimize_refuses_it(tmp_path, capsys) -> None:
    said = "graph value_info 't' has element type 99, which ONNX does not define"
    with pytest.raises(LoadError, match=said):
        graphopt.optimize(_relu_relu(99))
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_relu_relu(99), path)
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err
    assert not out.exists()


def test_check_reports_it(tmp_path, capsys) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_relu_relu(99), path)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "error: [onnx-invalid] value_info 't' has element type 99" in out
    assert "1 error" in out


def test_a_defined_value_info_type_is_optimized_and_passes_check(tmp_path, capsys) -> None:
    """Control (passes on the parent too)."""
    out = graphopt.optimize(_relu_relu(TensorProto.FLOAT))
    assert [n.op_type for n in out.graph.node] == ["Relu", "Relu"]
    path = tmp_path / "m.onnx"
    onnx.save(_relu_relu(TensorProto.FLOAT), path)
    assert main(["check", str(path)]) == 0
    assert "0 errors" in capsys.readouterr().out
