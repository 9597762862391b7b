"""H221: `graphopt build -o` a device or pipe (`/dev/null`, `/dev/stdout`, a FIFO). The engine
was written straight to it and its JSON sidecar beside it as a new file: `-o /dev/null` made
/dev/null.json (as root; anyone else got "cannot write in folder /dev" for a file they never
named), and a FIFO `pipe` left `pipe.json` in the folder. build refuses `-o -` for that
reason already (its sidecar); a path that is a stream is now refused the same way, in one
line, before TensorRT is imported. Shown with the fake TensorRT the backend tests use."""

from __future__ import annotations

import os
import sys
import threading

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends import trt_runtime
from graphopt.cli import main
from tests.trt_fake import fake_tensorrt


def _model(path) -> None:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.fixture
def fake_trt(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.16.1.11"))
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))


def test_a_fifo_output_is_refused_and_no_sidecar_is_left(tmp_path, capsys, fake_trt) -> None:  # type: ignore[no-untyped-def]
    _model(tmp_path / "m.onnx")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []  # a reader, so that a build that writes to it is not left waiting
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code = main(["build", str(tmp_path / "m.onnx"), "-o", str(fifo)])
    if reader.is_alive():  # refused: nothing opened the pipe; let the reader go
        with open(fifo, "wb"):
            pass
    reader.join(10)
    assert code == 2
    assert capsys.readouterr().err == (
        f"graphopt build: error: -o {fifo} is a FIFO: build writes the engine and its sidecar "
        "pipe.json as files side by side; give a file path\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "pipe"]  # no pipe.json
    assert got == [b""]


def test_dev_null_is_refused_before_tensorrt(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not installed: said after -o
    _model(tmp_path / "m.onnx")
    assert main(["build", str(tmp_path / "m.onnx"), "-o", os.devnull]) == 2
    assert capsys.readouterr().err == (
        f"graphopt build: error: -o {os.devnull} is a character device: build writes the engine "
        "and its sidecar null.json as files side by side; give a file path\n"
    )


def test_a_file_output_still_builds(tmp_path, capsys, fake_trt) -> None:  # type: ignore[no-untyped-def]
    _model(tmp_path / "m.onnx")
    assert main(["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "e.plan")]) == 0
    assert sorted(os.listdir(tmp_path)) == ["e.plan", "e.plan.json", "m.onnx"]
