"""A model with a bfloat16 output is run for OrtValues (644a9db), every feed made one; a
string feed cannot be (onnxruntime's Python API makes no OrtValue of strings). bench made
them before its try and died with a RuntimeError traceback ('Creation of OrtValues is
currently only supported from non-string numpy arrays'), and run() said onnxruntime's words
only; now both say, in one line, which input is a string tensor and why it cannot be run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run
from graphopt.cli import main
from graphopt.errors import BackendError


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["s"], ["t"]),
            helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16),
        ],
        "s28_review_strings",
        [
            helper.make_tensor_value_info("s", TensorProto.STRING, [2]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("t", TensorProto.STRING, [2]),
            helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [2]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_bench_says_a_string_input_cannot_run_with_a_bfloat16_output(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path)
    feeds = tmp_path / "in.npz"
    np.savez(feeds, s=np.array(["a", "bc"]), x=np.ones(2, np.float32))
    code = main(["bench", str(path), "--inputs", str(feeds), "--runs", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "input s is a string tensor" in err and "bfloat16 output" in err


def test_run_names_the_string_input():
    feeds = {"s": np.array(["a", "bc"], dtype=object), "x": np.ones(2, np.float32)}
    with pytest.raises(BackendError, match=r"input s is a string tensor.*bfloat16") as caught:
        run(_model(), feeds)
    assert "\n" not in str(caught.value)


def test_a_string_input_still_runs_where_no_output_is_bfloat16():
    model = _model()
    model.graph.node[1].attribute[0].i = TensorProto.FLOAT
    model.graph.output[1].type.tensor_type.elem_type = TensorProto.FLOAT
    got = run(model, {"s": np.array(["a", "bc"], dtype=object), "x": np.ones(2, np.float32)})
    assert list(got["t"]) == ["a", "bc"]
    np.testing.assert_array_equal(got["y"], np.ones(2, np.float32))
