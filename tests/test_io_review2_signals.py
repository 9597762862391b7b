"""SIGTERM during a save leaves no temporary file, as Ctrl-C does.

A save writes `.graphopt-<hex>-<name>` beside the output and renames it into place; on Ctrl-C
the KeyboardInterrupt removes it. SIGTERM (`kill`, `timeout`, a cancelled CI job) ended the
process at once and left it there, as large as the model.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    import graphopt.ir.model_io as model_io

    real = model_io._write_pieces

    def terminated_midway(f, pieces):
        real(f, pieces[:1])
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the signal arrives here
        real(f, pieces[1:])

    model_io._write_pieces = terminated_midway
    from graphopt.cli import main

    sys.exit(main(["optimize", sys.argv[1], "-o", sys.argv[2]]))
    """
)


def test_sigterm_during_a_save_removes_the_temporary_file(tmp_path):
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(np.ones((64, 64), np.float32), "w")],
    )
    src = tmp_path / "m.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8), src)
    out = tmp_path / "out.onnx"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert done.stderr.strip().splitlines() == [
        "graphopt optimize: terminated; nothing was written"
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_main_puts_the_sigterm_handler_back(tmp_path):
    from graphopt.cli import main

    before = signal.getsignal(signal.SIGTERM)
    assert main(["inspect", str(tmp_path / "missing.onnx")]) == 2
    assert signal.getsignal(signal.SIGTERM) is before
