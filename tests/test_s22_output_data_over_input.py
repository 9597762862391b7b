"""`graphopt optimize net.data -o net --external-data yes` (or an input that keeps its weights
as external data, whose output keeps them too): the output's data file `net.data` is the input
model's own file. The save wrote the weights over the model and exited 0 (H209 found it): the
input was lost. Refused before anything runs, in one line; a name that does not clash still
writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main
from tests.test_cli_review3 import one_line_error

WEIGHT = (np.arange(256 * 256, dtype=np.float32) / 1e4).reshape(256, 256)


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])],
        [numpy_helper.from_array(WEIGHT, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_external_data_yes_over_the_input_model_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "net.data"
    onnx.save(_model(), str(src))
    before = src.read_bytes()
    out = tmp_path / "net"
    assert main(["optimize", str(src), "-o", str(out), "--external-data", "yes"]) == 2
    one_line_error(capsys, "its data file net.data is the input model")
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.data"]


def test_an_input_with_external_data_keeps_it_and_is_refused_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "net.data"
    onnx.save(_model(), str(src), save_as_external_data=True, location="w.bin", size_threshold=0)
    before = src.read_bytes(), (tmp_path / "w.bin").read_bytes()
    assert main(["optimize", str(src), "-o", str(tmp_path / "net")]) == 2
    one_line_error(capsys, "is the input model")
    assert (src.read_bytes(), (tmp_path / "w.bin").read_bytes()) == before


def test_another_output_name_still_writes_external_data(tmp_path: Path) -> None:
    src = tmp_path / "net.data"
    onnx.save(_model(), str(src))
    out = tmp_path / "other.onnx"
    assert main(["optimize", str(src), "-o", str(out), "--external-data", "yes"]) == 0
    loaded = onnx.load(str(out))
    assert np.array_equal(numpy_helper.to_array(loaded.graph.initializer[0]), WEIGHT)
    assert (tmp_path / "other.onnx.data").is_file()
