"""`check`: an input with a fixed dim of 0 (an empty tensor) needs no optimization profile.

check reported every dim that was not a positive `dim_value` as dynamic: an input declared
[0, 3] was "input 'x' has dynamic dimensions [0, 3]; the engine needs an optimization profile,
e.g. --shapes x:MIN,OPT,MAX" (exit 1), a profile no flag can give (--shapes takes no 0, and a
profile of another size is refused: "axis 0 is fixed to 0 in the model"). TensorRT's parser
keeps a dim_value of 0 as it is (convertOnnxDims, onnx-tensorrt importerUtils.hpp 10.1 GA: -1
only for a dim_param, a negative dim_value or a dim with neither), as `graphopt build` then
finds the input static."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt
from graphopt.cli import main


def _relu(dims: list[int | str | None]) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_a_fixed_zero_dim_is_no_dynamic_dim() -> None:
    assert check_tensorrt(_relu([0, 3])) == []


def test_the_cli_says_clean_for_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_relu([0, 3]), path)
    assert main(["check", str(path), "--no-progress"]) == 0
    assert capsys.readouterr().out == f"{path}: TensorRT 10.15: 0 errors, 0 warnings\n"


@pytest.mark.parametrize("dims", [["N", 3], [None, 3]])
def test_a_named_or_unknown_dim_still_needs_a_profile(dims: list[int | str | None]) -> None:
    """(control: passes on the parent too) a dim_param, or a dim with neither field."""
    (finding,) = check_tensorrt(_relu(dims))
    assert finding.rule == "dynamic-shape" and "input 'x' has dynamic dimensions" in finding.message


def test_a_negative_dim_value_still_needs_a_profile() -> None:
    """(control: passes on the parent too) older paddle2onnx writes -1 for a dynamic dim."""
    model = _relu([1, 3])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    (finding,) = check_tensorrt(model)
    assert finding.rule == "dynamic-shape" and "[?, 3]" in finding.message
