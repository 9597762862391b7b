"""`check --shapes`: profiles whose ranges for a dim several inputs share by name do not
overlap are an error.

TensorRT's ONNX parser names each input's dims by their dim_params (ITensor::setDimensionName)
and its builder requires dims named alike to have overlapping intervals in the optimization
profile and equal sizes at run time (TensorRT's sampleNamedDimensions). check said "0 errors"
for --shapes h:1x3,2x3,4x3 b:8x3,16x3,32x3 on inputs h and b that are both [N, 3], profiles
`graphopt build` then hands TensorRT, which refuses them."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.tensorrt import parse_shapes
from graphopt.backends.trt_check import check_tensorrt
from graphopt.cli import main


def _model() -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Add", ["h", "b"], ["y"])],
        "g",
        [vi("h", TensorProto.FLOAT, ["N", 3]), vi("b", TensorProto.FLOAT, ["N", 3])],
        [vi("y", TensorProto.FLOAT, ["N", 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_ranges_apart_are_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path)
    argv = ["check", str(path), "--no-progress", "--shapes", "h:1x3,2x3,4x3", "b:8x3,16x3,32x3"]
    assert main(argv) == 1
    assert capsys.readouterr().out.splitlines() == [
        "error: [dynamic-shape] inputs share dimension 'N', to which the profiles give ranges "
        "that do not overlap ('h' 1..4, 'b' 8..32); TensorRT's builder requires dims named "
        "alike to overlap in the profile (and to be equal at run time): give them one range",
        f"{path}: TensorRT 10.15: 1 error, 0 warnings",
    ]


def test_two_fixed_sizes_are_apart() -> None:
    (finding,) = check_tensorrt(_model(), shapes=parse_shapes(["h:2x3", "b:5x3"]))
    assert finding.severity == "error" and "('h' 2..2, 'b' 5..5)" in finding.message


@pytest.mark.parametrize(
    "specs", [["h:1x3,2x3,4x3", "b:4x3,8x3,16x3"], ["h:2x3", "b:2x3"]], ids=["overlap", "equal"]
)
def test_ranges_that_overlap_are_fine(specs: list[str]) -> None:
    """(control: passes on the parent too)"""
    assert check_tensorrt(_model(), shapes=parse_shapes(specs)) == []


def test_profiled_names_alone_say_nothing_of_ranges() -> None:
    """(control: passes on the parent too) the API's `shapes` may be names only."""
    assert check_tensorrt(_model(), shapes={"h", "b"}) == []  # type: ignore[arg-type]
