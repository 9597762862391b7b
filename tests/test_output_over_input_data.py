"""`graphopt optimize` refuses an output that would overwrite an external data file its input
reads (-o naming that file, or an output whose <name>.data is it): the input model would be
left pointing at bytes that are not its weights. Optimizing a model in place stays fine."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


@pytest.fixture
def model_with_data(tmp_path):
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = tmp_path / "model.onnx"
    onnx.save(model, path, save_as_external_data=True, location="net.data", size_threshold=0)
    return path


@pytest.mark.parametrize("output", ["net.data", "net"])  # the data file; one whose .data it is
def test_an_output_over_the_inputs_data_file_is_refused(model_with_data, output, capsys):
    folder = model_with_data.parent
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(["optimize", str(model_with_data), "-o", str(folder / output)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "input model" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_in_place_and_elsewhere_still_write(model_with_data, tmp_path):
    other = tmp_path / "other.onnx"
    assert main(["optimize", str(model_with_data), "-o", str(other)]) == 0
    assert main(["optimize", str(model_with_data), "-o", str(model_with_data)]) == 0
    for path in (other, model_with_data):
        w = numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0])
        np.testing.assert_array_equal(w, np.arange(16, dtype=np.float32).reshape(4, 4))
