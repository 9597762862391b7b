"""A model path whose name the system will not look up (over 255 bytes: ENAMETOOLONG) is a
SaveError from `save_model` and one line, exit 2, from the commands that write a model; it was
a traceback (pathlib's is_dir raises ENAMETOOLONG on Python 3.11) after the whole run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.errors import SaveError
from graphopt.ir import save_model

LONG = "a" * 300


def _model() -> onnx.ModelProto:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("name", [f"{LONG}.onnx", f"{LONG}/m.onnx"])
@pytest.mark.parametrize("external_data", [None, True])
def test_save_model_long_name_is_a_save_error(
    tmp_path: Path, name: str, external_data: bool | None
) -> None:
    with pytest.raises(SaveError, match="File name too long"):
        save_model(_model(), tmp_path / name, external_data=external_data)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", [f"{LONG}.onnx", f"{LONG}/m.onnx"])
def test_optimize_long_output_name_one_line(tmp_path: Path, name: str) -> None:
    source = tmp_path / "m.onnx"
    onnx.save(_model(), source)
    out = tmp_path / name
    run = subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", str(source), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "File name too long" in lines[0], run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
