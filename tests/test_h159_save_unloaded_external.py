"""save_model of a model whose initializers still point at an external data file
(`onnx.load(..., load_external_data=False)`) wrote, into another folder, a model pointing at a
data file that is not there (onnx.load: 'should be stored in .../m.data, but it is not regular
file'), and with external data into the same file name, one pointing into the new data file at
the old offsets. Both are now a SaveError and nothing is written; a save beside the data file
it reads, to another data file, still works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import SaveError
from graphopt.ir import save_model

WEIGHTS = np.arange(600, dtype=np.float32)


def _unloaded(folder: Path) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [600])],
        initializer=[numpy_helper.from_array(WEIGHTS, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, folder / "m.onnx", save_as_external_data=True, location="m.data")
    return onnx.load(folder / "m.onnx", load_external_data=False)


@pytest.mark.parametrize("external", [None, True])
def test_other_folder_is_refused(tmp_path: Path, external: bool | None) -> None:
    model = _unloaded(tmp_path)
    (tmp_path / "other").mkdir()
    with pytest.raises(SaveError, match=r"keeps its data in external file 'm\.data'"):
        save_model(model, tmp_path / "other" / "o.onnx", external_data=external)
    assert list((tmp_path / "other").iterdir()) == []


def test_writing_over_its_data_file_is_refused(tmp_path: Path) -> None:
    model = _unloaded(tmp_path)
    before = (tmp_path / "m.data").read_bytes()
    with pytest.raises(SaveError, match=r"keeps its data in external file 'm\.data'"):
        save_model(model, tmp_path / "o.onnx", external_data=True, location="m.data")
    assert (tmp_path / "m.data").read_bytes() == before
    assert not (tmp_path / "o.onnx").exists()


def test_beside_its_data_file_still_saves(tmp_path: Path) -> None:
    out = save_model(_unloaded(tmp_path), tmp_path / "o.onnx")
    back = onnx.load(out)
    np.testing.assert_array_equal(numpy_helper.to_array(back.graph.initializer[0]), WEIGHTS)
