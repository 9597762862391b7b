"""Review 13: training_info tensors and external data. onnx's writer does not visit
training_info, so its initializers were always written inline: a model over 2 GiB through
them was a SaveError. Now, only when the model would otherwise stay over 2 GiB, they go to
the data file (as sparse initializers do): onnx.checker and onnxruntime accept them there,
graphopt's load reads them back, onnx.load leaves them unread. Under 2 GiB they stay inline,
where onnx.load reads them.

The 2 GiB threshold is lowered (monkeypatched) so that a few KiB stand for a model over it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from graphopt.errors import SaveError
from graphopt.ir import load, model_io, save_model

W = np.ones((32, 32), np.float32)
W0 = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)  # 4 KiB each
STEP = np.full((32, 32), 0.5, np.float32)
X = np.linspace(-1, 1, 32 * 32, dtype=np.float32).reshape(32, 32)


def _model() -> onnx.ModelProto:
    """y = x + w, and training_info: w initialized to W0 (an initializer of the
    initialization graph), updated to w + STEP (one of the algorithm graph, plus a Constant
    node's tensor)."""
    f32 = onnx.TensorProto.FLOAT
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "w"], ["y"], name="add")],
        "g",
        [oh.make_tensor_value_info("x", f32, [32, 32])],
        [oh.make_tensor_value_info("y", f32, [32, 32])],
        [numpy_helper.from_array(W, "w")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    info = model.training_info.add()
    info.initialization.CopyFrom(
        oh.make_graph(
            [oh.make_node("Identity", ["w0"], ["w_init"], name="init")],
            "initialization",
            [],
            [oh.make_tensor_value_info("w_init", f32, [32, 32])],
            [numpy_helper.from_array(W0, "w0")],
        )
    )
    info.initialization_binding.add(key="w", value="w_init")
    info.algorithm.CopyFrom(
        oh.make_graph(
            [
                oh.make_node(
                    "Constant", [], ["two"], name="c", value=numpy_helper.from_array(2 * STEP)
                ),
                oh.make_node("Add", ["w", "step"], ["w1"], name="up"),
                oh.make_node("Sub", ["w1", "two"], ["w_new"], name="down"),
            ],
            "algorithm",
            [],
            [oh.make_tensor_value_info("w_new", f32, [32, 32])],
            [numpy_helper.from_array(3 * STEP, "step")],
        )
    )
    info.update_binding.add(key="w", value="w_new")
    onnx.checker.check_model(model, full_check=True)
    return model


def _training_arrays(model: onnx.ModelProto) -> list[np.ndarray]:
    info = model.training_info[0]
    return [
        numpy_helper.to_array(info.initialization.initializer[0]),
        numpy_helper.to_array(info.algorithm.initializer[0]),
        numpy_helper.to_array(info.algorithm.node[0].attribute[0].t),
    ]


def _check_saved(path: Path) -> None:
    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": X})[0], X + W)
    back = load(path)
    assert back.external_data
    for got, want in zip(_training_arrays(back.model), [W0, 3 * STEP, 2 * STEP], strict=True):
        np.testing.assert_array_equal(got, want)
    bindings = [(b.key, b.value) for b in back.model.training_info[0].update_binding]
    assert bindings == [("w", "w_new")]


def test_over_the_limit_through_training_info_it_goes_to_external_data(
    tmp_path, monkeypatch, caplog
):
    """The parent refused: 'over 2 GiB even with its tensors in external data'."""
    monkeypatch.setattr(model_io, "TWO_GIB", 8192)  # the three training tensors are 12 KiB
    path = tmp_path / "m.onnx"
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        save_model(_model(), path)
    assert "training_info tensors are in m.onnx.data too" in caplog.text
    assert path.stat().st_size < 2048
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    stored = onnx.load(str(path), load_external_data=False).training_info[0]
    external = onnx.TensorProto.EXTERNAL
    assert stored.initialization.initializer[0].data_location == external
    assert stored.algorithm.initializer[0].data_location == external
    assert stored.algorithm.node[0].attribute[0].t.data_location == external
    _check_saved(path)
    # and saved over (the data file replaced: the training tensors name the fresh file too)
    save_model(load(path).model, path, external_data=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    _check_saved(path)


def test_under_the_limit_training_info_stays_inline_with_external_weights(tmp_path):
    """Where onnx.load reads it (it leaves external training tensors unread)."""
    path = tmp_path / "m.onnx"
    save_model(_model(), path, external_data=True)
    header = onnx.load(str(path), load_external_data=False)
    assert header.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    stored = onnx.load(str(path))
    for got, want in zip(_training_arrays(stored), [W0, 3 * STEP, 2 * STEP], strict=True):
        np.testing.assert_array_equal(got, want)
    _check_saved(path)


def test_an_inline_save_with_training_info_is_what_it_was(tmp_path):
    """Nothing changes for a model saved inline: the bytes are the model's serialization."""
    path = tmp_path / "m.onnx"
    model = _model()
    save_model(model, path)
    assert path.read_bytes() == model.SerializeToString()


def test_a_training_string_over_the_limit_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "TWO_GIB", 8192)
    model = _model()
    words = onnx.helper.make_tensor("words", onnx.TensorProto.STRING, [2000], [b"word"] * 2000)
    model.training_info[0].algorithm.initializer.append(words)
    with pytest.raises(SaveError, match=r"string tensor 'words' \(\d+ bytes\) must stay inline"):
        save_model(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
