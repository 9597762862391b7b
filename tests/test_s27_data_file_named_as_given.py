"""A command refusing to write over an input model's external data file names the path as
the user gave it: `split ... -o ext/ext.data` was refused as "-o ext.data: ..."."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def _model_with_data_in_subfolder(folder: Path) -> Path:
    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(1, 4096), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4096]),
        ],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (folder / "ext").mkdir()
    path = folder / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="ext/ext.data")
    return path


@pytest.mark.parametrize("spelling", ["ext/ext.data", "./ext/../ext/ext.data"])
def test_split_names_the_data_file_as_given(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
) -> None:
    path = _model_with_data_in_subfolder(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = (tmp_path / "ext" / "ext.data").read_bytes()
    assert main(["split", path.name, "--outputs", "y", "-o", spelling]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"-o {spelling}: is an external data file of the input model m.onnx" in err
    assert (tmp_path / "ext" / "ext.data").read_bytes() == before
    assert sorted(os.listdir(tmp_path / "ext")) == ["ext.data"]
