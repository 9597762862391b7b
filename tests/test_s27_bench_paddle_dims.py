"""bench's synthetic inputs for a PaddlePaddle export, whose dynamic dims are all written '?'
(and a batch of -1): '?' is no name the dims share. Sized 224 as the image's height and
width, it made the batch 224 too (ppocr det timed at 224x3x224x224, 1.6 s a run, 'batch 224').
And a run that fails on sizes bench chose says --shapes may fix it, not only --inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def _paddle_like(path: Path, height: int | None = None) -> None:
    """x [-1, 3, '?', '?'] → Conv 3x3 → y; with `height`, a Reshape that needs that height."""
    w = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    inits = [w]
    if height is not None:  # y [N, 2, H, W] read as [N, 2·height, W]: only H = height fits
        nodes[0].output[0] = "c"
        shape = numpy_helper.from_array(np.array([0, 2 * height, -1], np.int64), "shape")
        nodes.append(helper.make_node("Reshape", ["c", "shape"], ["y"]))
        inits.append(shape)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "?", "?"])
    x.type.tensor_type.shape.dim[0].dim_value = -1
    graph = helper.make_graph(
        nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_question_mark_dims_are_not_one_shared_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    _paddle_like(path)
    assert main(["bench", str(path), "--runs", "1", "--warmup", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("synthetic inputs x 1x3x224x224"), out
    assert "(batch 1)" in out


def test_a_failure_on_sizes_bench_chose_points_to_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    _paddle_like(path, height=48)
    argv = ["bench", str(path), "--runs", "1", "--warmup", "0", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.rstrip().endswith(
        "give real ones with --inputs NPZ, or other shapes with --shapes NAME:DIMS "
        "(x was 1x3x224x224)"
    ), err
    assert main([*argv, "--shapes", "x:1x3x48x64"]) == 0
    assert "synthetic inputs x 1x3x48x64" in capsys.readouterr().out
