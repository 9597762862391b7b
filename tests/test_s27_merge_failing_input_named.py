"""merge names the model that fails onnx.checker itself: a model with an op no schema defines
(or a domain it does not import) merged with a good one was refused as 'the merged model fails
onnx.checker: No Op registered for Frobnicate ...', naming no model, as if the merge had made
the fault."""

from __future__ import annotations

import subprocess
import sys

import onnx
import pytest
from onnx import parser

import graphopt
from graphopt.multitask import MergeError

GOOD = """<ir_version: 8, opset_import: ["" : 17]>
    good (float[N, 3] x) => (float[N, 3] y) { y = Relu(x) }"""


def _bad(change: str) -> onnx.ModelProto:
    model = parser.parse_model(GOOD)
    if change == "op":
        model.graph.node[0].op_type = "Frobnicate"
    else:
        model.graph.node[0].domain = "x.y"
    return model


@pytest.mark.parametrize(
    ("change", "why"),
    [("op", "No Op registered for Frobnicate"), ("domain", "No opset import for domain 'x.y'")],
)
def test_the_model_that_fails_itself_is_named(change, why):
    good = parser.parse_model(GOOD)
    with pytest.raises(MergeError) as caught:
        graphopt.merge([good, _bad(change)])
    text = str(caught.value)
    assert text.startswith("the merged model fails onnx.checker: ")
    assert why in text and "as model 1 does itself" in text
    assert "model 0" not in text


def test_cli_names_the_file(tmp_path):
    onnx.save(parser.parse_model(GOOD), tmp_path / "good.onnx")
    onnx.save(_bad("op"), tmp_path / "bad.onnx")
    out = tmp_path / "m.onnx"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphopt",
            "merge",
            str(tmp_path / "good.onnx"),
            str(tmp_path / "bad.onnx"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.onnx does itself" in lines[0], run.stderr
    assert not out.exists()
