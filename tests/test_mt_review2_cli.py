"""Review of `graphopt merge --verify` (second adversarial review of graphopt.multitask)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt.multitask
from graphopt.cli import main


def scaled(k: list[float]) -> onnx.ModelProto:
    """y = x · k, x and y of shape [3]."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        initializer=[numpy_helper.from_array(np.array(k, np.float32), "k")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_verify_accepts_nan_where_the_model_has_nan(tmp_path, capsys):
    onnx.save(scaled([np.nan, 1.0, 2.0]), tmp_path / "a.onnx")
    out = tmp_path / "m.onnx"
    assert main(["merge", str(tmp_path / "a.onnx"), "-o", str(out), "--verify"]) == 0
    assert "verify: a_y: max abs diff 0" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [[np.nan, 5.0, 5.0], [1.0, 1.0, 2.0]])
def test_verify_refuses_a_merged_output_that_differs_beside_or_at_a_nan(
    wrong, tmp_path, monkeypatch, capsys
):
    """--verify took max |merged − own| with np.max, which is NaN as soon as either side has a
    NaN, and `NaN > tolerance` is false: a teacher output with one NaN hid every other
    difference, and a NaN the merged model made where the model has a number passed too."""
    onnx.save(scaled([np.nan, 1.0, 2.0]), tmp_path / "a.onnx")
    real = graphopt.multitask.merge_with_report

    def corrupted(*args, **kwargs):  # the merge under test, with a wrong weight in its result
        merged, report = real(*args, **kwargs)
        merged.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.float32(wrong), "k"))
        return merged, report

    monkeypatch.setattr(graphopt.multitask, "merge_with_report", corrupted)
    out = tmp_path / "m.onnx"
    assert main(["merge", str(tmp_path / "a.onnx"), "-o", str(out), "--verify"]) == 2
    assert "merged output 'a_y' differs" in capsys.readouterr().err
    assert not out.exists()


def test_verify_of_another_shape_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    """A merged output of another shape crashed the check with numpy's broadcast error."""
    onnx.save(scaled([1.0, 1.0, 2.0]), tmp_path / "a.onnx")
    real = graphopt.multitask.merge_with_report

    def corrupted(*args, **kwargs):
        merged, report = real(*args, **kwargs)
        concat = helper.make_node("Concat", ["x", "x"], ["a_y"], axis=0)  # [6], not [3]
        merged.graph.node[0].CopyFrom(concat)
        del merged.graph.output[0].type.tensor_type.shape.dim[:]
        return merged, report

    monkeypatch.setattr(graphopt.multitask, "merge_with_report", corrupted)
    out = tmp_path / "m.onnx"
    assert main(["merge", str(tmp_path / "a.onnx"), "-o", str(out), "--verify"]) == 2
    assert "merged output 'a_y' differs" in capsys.readouterr().err


def test_verify_of_a_string_output(tmp_path, capsys):
    """A string output crashed --verify (astype(float64) of the strings)."""
    names = numpy_helper.from_array(np.array(["cat", "dog"], object), "names")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["names"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [2])],
        initializer=[names],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "s.onnx")
    assert (
        main(["merge", str(tmp_path / "s.onnx"), "-o", str(tmp_path / "m.onnx"), "--verify"]) == 0
    )
    assert "verify: s_y: max abs diff 0" in capsys.readouterr().out
