"""`-o -` with a model over protobuf's 2 GiB limit is one line and exit 2 (`save_output`).

a30d199 made `serialized_pieces` serialize as its pieces are read: the `try` around the call
caught nothing any more, and the ValueError of the 2 GiB check escaped from the loop writing
to the standard output as a traceback (exit 1). The limit stands lowered here (`TWO_GIB`),
as tests/test_model_io.py lowers it, so that a small model is over it."""

from __future__ import annotations

import subprocess
import sys

import onnx
import onnx.helper as oh
from onnx import numpy_helper

_RUN = """
import sys
from graphopt import cli
from graphopt.ir import model_io
model_io.TWO_GIB = 1024  # the model below is ~4 KB: over the limit, as one over 2 GiB is
sys.exit(cli.main(["optimize", sys.argv[1], "-o", "-"]))
"""


def test_a_model_over_the_limit_to_standard_output_is_one_line(tmp_path):
    import numpy as np

    w = numpy_helper.from_array(np.arange(1024, dtype=np.float32), "w")
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "w"], ["y"], name="add")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1024])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1024])],
        [w],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "out.bin"
    with open(out, "wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-c", _RUN, str(path)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "-o -: cannot serialize the model" in lines[0], done.stderr
    assert out.read_bytes() == b""  # nothing of the model went out before the refusal
