"""`bench`'s synthetic inputs give a dim name that several inputs share one size.

Each input's symbolic dims were sized on their own: `--shapes h:2x3` on a model whose inputs
h, b, i are all [N, 3] fed b and i at 1x3 (onnxruntime: "Shape mismatch attempting to re-use
buffer. {1,3} != {2,3}", blamed on the synthetic values), and an image [N, 3, H, W] with a mask
[N, H, W] was timed with the mask at 1x1x1 (a broadcast, not the declared shapes)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _model(path: Path, nodes, inputs, outputs) -> str:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return str(path)


def _three_inputs(tmp_path: Path) -> str:
    vi = helper.make_tensor_value_info
    return _model(
        tmp_path / "multi.onnx",
        [
            helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT16),
            helper.make_node("Add", ["h", "bf"], ["s"]),
            helper.make_node("Cast", ["i"], ["if"], to=TensorProto.FLOAT16),
            helper.make_node("Add", ["s", "if"], ["y"]),
        ],
        [
            vi("h", TensorProto.FLOAT16, ["N", 3]),
            vi("b", TensorProto.BOOL, ["N", 3]),
            vi("i", TensorProto.INT64, ["N", 3]),
        ],
        [vi("y", TensorProto.FLOAT16, ["N", 3])],
    )


def _image_and_mask(tmp_path: Path) -> str:
    vi = helper.make_tensor_value_info
    return _model(
        tmp_path / "mask.onnx",
        [
            helper.make_node("ReduceMean", ["img"], ["m"], axes=[1], keepdims=0),
            helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
            helper.make_node("Concat", ["m", "mf"], ["y"], axis=0),
        ],
        [
            vi("img", TensorProto.FLOAT, ["N", 3, "H", "W"]),
            vi("mask", TensorProto.BOOL, ["N", "H", "W"]),
        ],
        [vi("y", TensorProto.FLOAT, ["M", "H", "W"])],
    )


def _bench(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["bench", *argv, "--runs", "1", "--warmup", "0", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out.strip()


def test_shapes_of_one_input_size_the_dim_it_shares_with_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _bench([_three_inputs(tmp_path), "--shapes", "h:2x3"], capsys)
    assert out.endswith("(batch 2), synthetic inputs h 2x3, b 2x3, i 2x3")


def test_a_mask_gets_the_default_spatial_size_of_the_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _bench([_image_and_mask(tmp_path)], capsys)
    assert out.endswith("synthetic inputs img 1x3x224x224, mask 1x224x224")


def test_a_mask_gets_the_spatial_size_shapes_gives_the_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _bench([_image_and_mask(tmp_path), "--shapes", "img:2x3x32x48"], capsys)
    assert out.endswith("synthetic inputs img 2x3x32x48, mask 2x32x48")


def test_shapes_given_for_each_input_are_timed_as_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(control: passes on the parent too)"""
    out = _bench([_three_inputs(tmp_path), "--shapes", "h:4x3", "b:4x3", "i:4x3"], capsys)
    assert out.endswith("synthetic inputs h 4x3, b 4x3, i 4x3")
