"""An output that is a device or a pipe is written to, not renamed over.

save_model wrote a temporary file beside the output and renamed it into place: for
`-o /dev/null` run as root (a container) that replaced the null device with a regular file, and
a FIFO (or `-o /dev/stdout` into a pipe) became a file nobody read. onnx.save opens the path
and writes, as it is now done for these.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from graphopt.cli import main
from graphopt.ir import save_model
from graphopt.ir.model_io import write_atomically
from tests.models_util import WEIGHT, matmul_model

_model = matmul_model


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("external", [None, True])
def test_saving_into_a_fifo_writes_through_it(tmp_path, external):
    """With external data asked for (the CLI's auto for a source with external data), a pipe
    gets the model in one piece: there is no folder beside it for a data file."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer's open returns
    try:
        save_model(_model(), fifo, external_data=external)
        data = _read_all(reader)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
    back = onnx.load_model_from_string(data)
    np.testing.assert_array_equal(numpy_helper.to_array(back.graph.initializer[0]), WEIGHT)


def test_write_atomically_writes_through_a_fifo(tmp_path):
    """The engine, cache and manifest writers share this writer."""
    fifo = tmp_path / "engine.plan"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomically(fifo, tmp_path, [b"ab", b"cd"])
        assert _read_all(reader) == b"abcd"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mknod needs root")
def test_optimize_into_a_null_device_keeps_the_device(tmp_path):
    """A stand-in for `graphopt optimize m.onnx -o /dev/null` run as root."""
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    src = tmp_path / "m.onnx"
    onnx.save(_model(), str(src))
    assert main(["optimize", str(src), "-o", str(null)]) == 0
    assert stat.S_ISCHR(os.stat(null).st_mode), "the device node was replaced by a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "null"]
