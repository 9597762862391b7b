"""fp16_model on a model whose weights are still in an external file (onnx.load(...,
load_external_data=False)): a one-line BackendError naming the tensor and its file (H220).
Before, it was onnx's ValidationError with a traceback ('... should be stored in w.bin, but it
is not regular file'), or, run from the folder holding the file, 'cannot convert the model to
float16: cannot reshape array of size 128 into shape (64,)' (the converter read the float32
bytes as float16), or a model still reading the file, found from the current directory only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model
from graphopt.errors import BackendError


def _saved(folder: Path, value: float) -> Path:
    graph = h.make_graph(
        [h.make_node("Mul", ["x", "w"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [64])],
        [h.make_tensor_value_info("y", T.FLOAT, [64])],
        initializer=[nh.from_array(np.full(64, value, np.float32), "w")],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    path = folder / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, location="w.bin", size_threshold=0)
    return path


@pytest.mark.parametrize("value", [0.5, 1e5])
@pytest.mark.parametrize("here", [False, True], ids=["elsewhere", "from-its-folder"])
def test_weights_left_in_an_external_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: float, here: bool
) -> None:
    path = _saved(tmp_path, value)
    if here:
        monkeypatch.chdir(tmp_path)
    model = onnx.load(path, load_external_data=False)
    with pytest.raises(BackendError, match=r"'w' keeps its data in the external file 'w\.bin'"):
        fp16_model(model)


def test_weights_loaded_from_an_external_file_convert(tmp_path: Path) -> None:
    model = onnx.load(_saved(tmp_path, 0.5))
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": np.linspace(-2, 2, 64, dtype=np.float32)}
    np.testing.assert_allclose(run(half, feeds)["y"], run(model, feeds)["y"], rtol=1e-3)
