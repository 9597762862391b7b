"""`graphopt check --shapes` on a model without inputs says it has none (H207 found the message
ended '(inputs: )')."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper

from graphopt.cli import main


def test_a_model_without_inputs_says_it_has_none(tmp_path, capsys) -> None:
    value = numpy_helper.from_array(np.float32([1.0, 2.0]))
    graph = oh.make_graph(
        [oh.make_node("Constant", [], ["y"], name="c", value=value)],
        "g",
        [],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8), path)
    assert main(["check", str(path), "--shapes", "x:1x4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--shapes names x, which the model does not have (it has no inputs)" in err
