"""A path or external data location holding a NUL character is named as the problem: save_model
said "cannot serialize: embedded null byte" (the model serialized fine) or, with external data,
"its data file a b.onnx.data went from the save's folder .graphopt-..."; load said "no such
file". Nothing is left behind in the folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import LoadError, SaveError
from graphopt.ir import load, save_model


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[numpy_helper.from_array(np.ones(600, np.float32), "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("external", [None, True])
def test_save_path_with_nul(tmp_path: Path, external: bool | None) -> None:
    with pytest.raises(SaveError, match="cannot hold a NUL character") as caught:
        save_model(_model(), str(tmp_path / "a\0b.onnx"), external_data=external)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_save_location_with_nul(tmp_path: Path) -> None:
    with pytest.raises(SaveError, match=r"location 'a\\x00b' holds a NUL character"):
        save_model(_model(), tmp_path / "m.onnx", external_data=True, location="a\0b")
    assert list(tmp_path.iterdir()) == []


def test_load_path_with_nul(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="cannot hold a NUL character"):
        load(str(tmp_path / "a\0b.onnx"))
