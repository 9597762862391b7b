"""quantize --preprocess: a key the spec file gives twice, and collections nested past any use,
are one-line errors naming the file and line.

YAML keeps the last of two equal keys without a word: a spec with `mean:` pasted below the
first calibrated on the second (exit 0), where a pipeline file refuses a key given twice. And
PyYAML composes nested collections recursively: `size: [[[...` 50 000 deep ended quantize in a
RecursionError traceback (exit 1).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main
from graphopt.quant.data import PreprocessSpec
from graphopt.realmodels import image_paths


def _setup(folder: Path) -> list[str]:
    """argv of a quantize run: a Conv model of a free image size, one photograph."""
    weight = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "h", "w"])],
        [weight],
    )
    model = folder / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    calib = folder / "calib"
    calib.mkdir()
    (calib / "a.png").write_bytes(image_paths(("astronaut.png",))[0].read_bytes())
    out = folder / "q.onnx"
    return ["quantize", str(model), "-o", str(out), "--calib", str(calib), "--no-progress"]


def test_a_key_given_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _setup(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text("size: [32, 32]\nmean: [0.5, 0.5, 0.5]\nscale: 0.0039\nmean: [0, 0, 0]\n")
    assert main([*argv, "--preprocess", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"graphopt quantize: error: {spec}:4: cannot read preprocessing spec: key 'mean' is "
        "given twice (first at line 2); keep one"
    ]
    assert not (tmp_path / "q.onnx").exists()


def test_collections_nested_past_any_use_are_one_line(tmp_path: Path) -> None:
    argv = _setup(tmp_path)
    spec = tmp_path / "deep.yaml"
    spec.write_text("size: " + "[" * 50_000 + "]" * 50_000 + "\n")
    run = subprocess.run(
        [sys.executable, "-m", "graphopt", *argv, "--preprocess", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr[-500:]
    assert run.stderr.splitlines() == [
        f"graphopt quantize: error: {spec}:1: cannot read preprocessing spec: collections "
        "nested more than 8 deep"
    ]
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize(
    "text",
    [
        "size: [32, 48]\nscale: 0.0039\nmean: [0.5, 0.5, 0.5]\n",
        "\ufeffsize: [32, 48]\r\nscale: 0.0039\r\nmean: 0.5\r\n",  # Notepad: BOM, CRLF
        "size: '32x48'\nscale: 0.0039\nmean: '0.5 0.5 0.5'\n",
    ],
)
def test_a_spec_read_as_before(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8", newline="")
    read = PreprocessSpec.from_yaml(spec)
    assert (read.size, read.scale, read.mean) == ((32, 48), 0.0039, (0.5, 0.5, 0.5))
