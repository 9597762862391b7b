"""H221: Ctrl-C or SIGTERM while `-o -` was writing the model to standard output said
"interrupted; nothing was written" (exit 130/143), though part of the model had gone out and
cannot be taken back: `quantize ... -o - > q.onnx` left a 21-byte q.onnx beside that line
(common_det, the signal after the first piece). `save_output` now says so
("part of the model had gone to standard output ...: discard it"); an interrupt before any
byte went out still says nothing was written.

A conv model built in code, calibrated on two real scikit-image photographs; the signal is
raised by the standard output's buffer itself, after it took the first piece."""

from __future__ import annotations

import io
import shutil
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt import cli
from graphopt.realmodels import image_paths


class _Buffer(io.BytesIO):
    """Standard output's bytes: takes `take` writes, then raises `signal_raised`."""

    def __init__(self, take: int, signal_raised: type[BaseException] | None) -> None:
        super().__init__()
        self.take, self.signal_raised = take, signal_raised

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        if self.signal_raised is not None and self.take == 0:
            raise self.signal_raised
        self.take -= 1
        return super().write(data)


def _setup(tmp_path) -> list[str]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(
        (rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32), "W"
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1] * 4),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32, 32])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in image_paths()[:2]:
        shutil.copy(image, calib / image.name)
    return ["quantize", str(tmp_path / "m.onnx"), "-o", "-", "--calib", str(calib), "--no-progress"]


@pytest.mark.parametrize(
    ("signal_raised", "code", "word"),
    [(KeyboardInterrupt, 130, "interrupted"), (cli._Terminated, 143, "terminated")],
)
def test_an_interrupt_mid_model_says_part_of_it_went_out(
    tmp_path, monkeypatch, capsys, signal_raised, code, word
) -> None:  # type: ignore[no-untyped-def]
    argv = _setup(tmp_path)
    buffer = _Buffer(1, signal_raised)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    assert cli.main(argv) == code
    assert len(buffer.getvalue()) > 0  # a piece went out: the reader holds part of a model
    assert capsys.readouterr().err == (
        f"graphopt quantize: {word}; part of the model had gone to standard output; what its "
        "reader got is not a whole model: discard it\n"
    )


def test_an_interrupt_before_any_byte_still_says_nothing_was_written(
    tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    argv = _setup(tmp_path)
    buffer = _Buffer(0, KeyboardInterrupt)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    import graphopt.ir.model_io as model_io

    def interrupted(model):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # while the model is serialized, before a byte is written

    monkeypatch.setattr(model_io, "serialized_pieces", interrupted)
    assert cli.main(argv) == 130
    assert buffer.getvalue() == b""
    assert capsys.readouterr().err == "graphopt quantize: interrupted; nothing was written\n"


def test_a_whole_model_still_goes_out(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = _setup(tmp_path)
    buffer = _Buffer(0, None)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    assert cli.main(argv) == 0
    model = onnx.load_from_string(buffer.getvalue())
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert "wrote standard output" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("signal_raised", "code", "word"),
    [(KeyboardInterrupt, 130, "interrupted"), (cli._Terminated, 143, "terminated")],
)
def test_an_interrupt_mid_model_into_a_pipe_path_says_so(
    tmp_path, monkeypatch, capsys, signal_raised, code, word
) -> None:  # type: ignore[no-untyped-def]
    """The same through a path that is a pipe (`-o /dev/stdout` into `> q.onnx` or `| ...`, a
    FIFO): the model is written straight, and a signal after its first piece left 16 bytes of
    common_det's model with "nothing was written"."""
    import os
    import threading

    import graphopt.ir.model_io as model_io

    argv = _setup(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()

    def first_piece_then_signal(f, data):  # type: ignore[no-untyped-def]
        f.write(next(iter(data)))
        f.flush()
        raise signal_raised

    monkeypatch.setattr(model_io, "_write", first_piece_then_signal)
    argv[argv.index("-")] = str(fifo)
    assert cli.main(argv) == code
    reader.join(10)
    assert got and len(got[0]) > 0  # the reader holds the first piece of a model
    assert capsys.readouterr().err == (
        f"graphopt quantize: {word}; {fifo} is a device or pipe, written straight: what it got "
        "may be part of the model, not a whole one: discard it\n"
    )
