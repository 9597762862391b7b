"""A hint naming a weight of an IR 3 teacher (which lists every weight as a graph input too) is
refused as a constant: it was called 'a teacher input (the samples themselves)', which sent the
user looking at the data. A real graph input is still called an input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main
from graphopt.distill import DistillError, write_targets


def _ir3_teacher() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "s27",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    onnx.checker.check_model(model)
    return model


def _feeds() -> list[dict[str, np.ndarray]]:
    return [{"x": np.ones((1, 4), np.float32)}]


def test_a_weight_listed_as_an_input_is_a_constant(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match=r"^hint 'W' is a constant of the teacher"):
        write_targets(_ir3_teacher(), _feeds(), tmp_path / "t", hints=["W"])
    with pytest.raises(DistillError, match=r"^hint 'x' is a teacher input \(the samples"):
        write_targets(_ir3_teacher(), _feeds(), tmp_path / "t", hints=["x"])
    assert not (tmp_path / "t").exists()


def test_the_cli_says_it_in_one_line(tmp_path: Path, capsys) -> None:
    teacher = tmp_path / "teacher.onnx"
    onnx.save(_ir3_teacher(), teacher)
    np.save(tmp_path / "s0.npy", _feeds()[0]["x"])
    out = tmp_path / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(tmp_path / "s0.npy"), "-o", str(out)]
    assert main([*argv, "--hints", "W", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hint 'W' is a constant of the teacher" in err[0]
    assert not out.exists()
