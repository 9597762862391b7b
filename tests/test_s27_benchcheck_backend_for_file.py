"""`bench` says which backend a file is for when it is given the other one.

An engine (build's `-o m.plan`, trtexec's `--saveEngine m.engine`) given without --backend
tensorrt was "m.plan: not an ONNX model (protobuf decode failed...)", with no word of the
flag; the reverse (an .onnx model given --backend tensorrt) said "build an engine first",
but only for a lower-case `.onnx`: MODEL.ONNX went on to TensorRT (here: "TensorRT is not
installed"; with TensorRT: "cannot deserialize the engine")."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _bench(path: Path, *flags: str) -> list[str]:
    return ["bench", str(path), "--runs", "1", "--warmup", "0", "--no-progress", *flags]


@pytest.mark.parametrize("name", ["m.plan", "m.engine", "M.TRT"])
def test_an_engine_without_backend_tensorrt_is_told_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x01\x02 not ONNX, an engine's bytes")
    assert main(_bench(path)) == 2
    assert capsys.readouterr().err == (
        f"graphopt bench: error: {path}: not an ONNX model (protobuf decode failed: truncated or "
        "another format); a TensorRT engine (graphopt build's) is timed with --backend tensorrt\n"
    )


def test_another_file_that_is_not_onnx_is_not_called_an_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(control: passes on the parent too)"""
    path = tmp_path / "m.bin"
    path.write_bytes(b"\x01\x02 not ONNX")
    assert main(_bench(path)) == 2
    assert capsys.readouterr().err.endswith(
        "(protobuf decode failed: truncated or another format)\n"
    )


def test_an_upper_case_onnx_model_is_no_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "MODEL.ONNX"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(_bench(path, "--backend", "tensorrt")) == 2
    assert capsys.readouterr().err == (
        f"graphopt bench: error: {path} is an ONNX model: build an engine first with "
        f"'graphopt build {path} -o MODEL.plan'\n"
    )
