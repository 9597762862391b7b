"""`graphopt build --shapes` on a network without inputs: TensorRT's build refused the unknown
name with "--shapes names x, which the network does not have (inputs: )". The message is now
made by `tensorrt.unknown_profiles_error`, shared with `graphopt check` (which said "(it has
none)"): "(it has no inputs)" where there are none, the names shown escaped where there are."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper

from graphopt.backends.tensorrt import unknown_profiles_error
from graphopt.cli import main
from graphopt.errors import BackendError


def test_a_network_without_inputs_says_so() -> None:
    error = unknown_profiles_error(["x"], [], "network")
    assert isinstance(error, BackendError)
    assert str(error) == "--shapes names x, which the network does not have (it has no inputs)"


def test_the_inputs_there_are_are_named() -> None:
    error = unknown_profiles_error(["a", "b"], ["images", "scale"], "network")
    assert str(error) == (
        "--shapes names a, b, which the network does not have (inputs: images, scale)"
    )


def test_names_stay_on_one_line() -> None:
    error = unknown_profiles_error(["x\ny"], ["in\n1"], "network")
    assert "\n" not in str(error)
    assert "'x\\ny'" in str(error) and "'in\\n1'" in str(error)


def test_check_says_it_alike(tmp_path, capsys) -> None:
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
    assert err.rstrip().endswith(
        "--shapes names x, which the model does not have (it has no inputs)"
    )
