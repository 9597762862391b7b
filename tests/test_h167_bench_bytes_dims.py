"""H167: `bench` read the batch from a dim whose name says batch; a dim_param that is not
UTF-8 in the file reaches Python as bytes (onnx.proto is proto2), and matching it was a
TypeError ("cannot use a string pattern on a bytes-like object": a traceback, exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _model(path: Path, dim: str) -> Path:
    """Relu over x: float[4, <dim>], the dim's name written with 'QQQ' as bytes 0xff 'ZZ'."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString().replace(b"QQQ", b"\xffZZ"))
    return path


@pytest.mark.parametrize(("dim", "batch"), [("QQQbatch", 6), ("QQQlen", 4)])
def test_bench_reads_the_batch_past_a_dim_name_not_utf8(tmp_path, capsys, dim, batch) -> None:
    path = _model(tmp_path / "m.onnx", dim)
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[1].dim_param == (
        b"\xffZZ" + dim[3:].encode()
    )
    argv = ["bench", str(path), "--runs", "2", "--warmup", "0", "--no-progress", "--json"]
    assert main([*argv, "--shapes", "x:4x6"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["batch"] == batch  # the dim named batch (axis 1), else axis 0
    assert result["shapes"] == {"x": [4, 6]}
