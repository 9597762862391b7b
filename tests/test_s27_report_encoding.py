"""A report on a standard output whose encoding cannot hold one of its characters (a path
'o€.onnx' on an ASCII or cp1252 stdout: Windows with the output redirected) is written with
those characters escaped, as Python's stderr writes them: it was a UnicodeEncodeError
traceback, exit 1, after the model had been written."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from graphopt.cli import _ReportStream


def test_optimize_reports_a_path_its_stdout_cannot_encode(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["i"]), helper.make_node("Relu", ["i"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx"
    )
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", "m.onnx", "-o", "o\u20ac.onnx"],
        cwd=tmp_path,
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert done.stdout.endswith(b"; wrote o\\u20ac.onnx\n")
    assert [n.op_type for n in onnx.load(tmp_path / "o\u20ac.onnx").graph.node] == ["Relu"]


def test_the_report_stream_escapes_only_what_the_encoding_lacks() -> None:
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, encoding="cp1252")
    stream = _ReportStream(text)
    assert stream.write("a \u20ac b \u2264 c\n") == len("a \u20ac b \u2264 c\n")
    stream.flush()
    assert raw.getvalue() == b"a \x80 b \\u2264 c\n"  # cp1252 has the euro sign, not the ≤
