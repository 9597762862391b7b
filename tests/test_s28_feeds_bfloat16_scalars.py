"""A scalar (0-d) feed of a model run for bfloat16: the bfloat16 paths (a bfloat16 input fed as
an OrtValue of its bits; every feed as an OrtValue where the model has a bfloat16 output) made
their arrays C-contiguous with np.ascontiguousarray, which makes a 0-d array 1-D, and
onnxruntime refused the feed of a scalar input ("Invalid rank for input: x Got: 1 Expected:
0"). Now a feed keeps its shape (copied to C order only where it is not)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import example_feeds, run
from graphopt.cli import main


def _cast(x_type: int, y_type: int) -> onnx.ModelProto:
    """y = Cast(x), both scalars."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=y_type)],
        "g",
        [helper.make_tensor_value_info("x", x_type, [])],
        [helper.make_tensor_value_info("y", y_type, [])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("given", [np.float32(2.5), np.uint16(0x4020)], ids=["f32", "bits"])
def test_scalar_bfloat16_input(tmp_path, capsys, given):
    model = _cast(TensorProto.BFLOAT16, TensorProto.FLOAT)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    feeds = tmp_path / "f.npz"
    np.savez(feeds, x=given)
    got = run(model, example_feeds(model, npz=feeds))["y"]
    assert got.shape == () and got == 2.5
    out = str(tmp_path / "o.onnx")
    assert main(["optimize", str(path), "-o", out, "--verify", "--inputs", str(feeds)]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    assert main(["bench", str(path), "--inputs", str(feeds), "--runs", "2", "--no-progress"]) == 0


def test_scalar_feed_of_a_model_with_a_bfloat16_output(tmp_path, capsys):
    model = _cast(TensorProto.FLOAT, TensorProto.BFLOAT16)
    got = run(model, {"x": np.array(2.5, np.float32)})["y"]
    assert got.shape == () and got.dtype == ml_dtypes.bfloat16 and float(got) == 2.5
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    feeds = tmp_path / "f.npz"
    np.savez(feeds, x=np.float32(2.5))
    out = str(tmp_path / "o.onnx")
    assert main(["optimize", str(path), "-o", out, "--verify", "--inputs", str(feeds)]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    assert main(["bench", str(path), "--inputs", str(feeds), "--runs", "2", "--no-progress"]) == 0
