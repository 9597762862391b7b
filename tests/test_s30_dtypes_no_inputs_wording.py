"""`optimize --input-shape x:1` (and `graphopt.optimize(..., input_shapes=...)`) on a model
without inputs said "the model has no input 'x'; inputs: " followed by nothing. It now says
the model has no inputs; a model with inputs still lists them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import PipelineError


def _model(with_input: bool) -> onnx.ModelProto:
    """y = Relu(c), c a constant (with_input: y = Relu(x), x float [N, 2])."""
    source = "x" if with_input else "c"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])] if with_input else []
    graph = helper.make_graph(
        [helper.make_node("Relu", [source], ["y"])],
        "g",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [] if with_input else [numpy_helper.from_array(np.array([1, -1], np.float32), "c")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_optimize_says_the_model_has_no_inputs(tmp_path, capsys) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_model(with_input=False), path)
    assert main(["optimize", str(path), "-o", str(out), "--input-shape", "x:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.endswith("the model has no input 'x'; it has no inputs"), err
    assert not out.exists()


def test_the_api_says_the_model_has_no_inputs() -> None:
    with pytest.raises(PipelineError, match=r"; it has no inputs$"):
        graphopt.optimize(_model(with_input=False), input_shapes={"x": [1]})


def test_a_model_with_inputs_lists_them() -> None:
    with pytest.raises(PipelineError, match=r"no input 'z'; inputs: x$"):
        graphopt.optimize(_model(with_input=True), input_shapes={"z": [1, 2]})
