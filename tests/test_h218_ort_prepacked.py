"""A model onnxruntime saved with its pre-packed weights loads (H218).

onnxruntime (1.21 and later) saves an optimized model with
`session.save_external_prepacked_constant_initializers` keeping, beside each weight's
location, offset and length, entries `prepacked_0`, ... that point at its pre-packed copies in
the data file: a cache of its own, which it reads back (and rebuilds when they are absent).
baf971d refused every external data key onnx does not know, so `graphopt optimize` of such a
model, which onnxruntime runs, failed ("has an external data entry 'prepacked_0', which is none
of basepath, ... (a damaged file?)"); before it, the load dropped the entries (with two lines
of onnx UserWarning) and the model came out right. Now they are dropped without a word, as
the load drops every external data entry of the tensors it reads.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.ir import load, save_model


def _prepacked_model(tmp_path):  # type: ignore[no-untyped-def]
    """A MatMul model as onnxruntime saves it optimized, its weight's pre-packed copy kept."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 256])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    for key, value in (
        ("session.optimized_model_external_initializers_file_name", "opt.onnx.data"),
        ("session.optimized_model_external_initializers_min_size_in_bytes", "100"),
        ("session.save_external_prepacked_constant_initializers", "1"),
    ):
        options.add_session_config_entry(key, value)
    ort.InferenceSession(str(tmp_path / "m.onnx"), options, providers=["CPUExecutionProvider"])
    return tmp_path / "opt.onnx"


def test_a_model_saved_with_onnxruntimes_prepacked_weights_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _prepacked_model(tmp_path)
    stored = onnx.load(str(path), load_external_data=False).graph.initializer[0]
    assert any(e.key.startswith("prepacked") for e in stored.external_data)  # as saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (onnx's 'Ignoring unknown external data key(s)')
        loaded = load(path)
    assert loaded.external_data
    weight = numpy_helper.to_array(loaded.model.graph.initializer[0])
    feeds = {"x": np.random.default_rng(1).standard_normal((4, 256)).astype(np.float32)}
    np.testing.assert_allclose(
        feeds["x"] @ weight,
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0],
        rtol=1e-4,
        atol=1e-4,
    )
    out = tmp_path / "out.onnx"
    save_model(graphopt.optimize(path), out, external_data=True)
    onnx.checker.check_model(str(out), full_check=True)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, feeds)[0], feeds["x"] @ weight, rtol=1e-4, atol=1e-4
    )
