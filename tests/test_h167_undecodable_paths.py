"""H167: a model file whose name is not UTF-8 (bytes 0xff: a Latin-1 name) reaches Python as a
str with a lone surrogate. `inspect` and `bench` printed it raw, and standard output on a
UTF-8 locale other than C (en_US.UTF-8: errors 'strict') refused it: UnicodeEncodeError, a
traceback, exit 1, after the whole run. Now the path is shown as `check` and `optimize` show
it (`shown`: quoted, escaped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from onnx import TensorProto, helper, save

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX byte file names")


def _model(folder: Path) -> str:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = os.fsdecode(os.fsencode(str(folder)) + b"/r\xffx.onnx")
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    "command", [["inspect"], ["bench", "--runs", "1", "--warmup", "0", "--no-progress"]]
)
def test_a_path_not_utf8_is_printed_escaped(tmp_path: Path, command: list[str]) -> None:
    path = _model(tmp_path)
    env = {
        **os.environ,
        "PYTHONIOENCODING": "utf-8:strict",  # as en_US.UTF-8 sets standard output up
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", *command, path],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert repr(path).encode() in done.stdout  # '/.../r\udcffx.onnx'
