"""Review H164 of eliminate-noops and merge-reshapes: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from graphopt.api import optimize
from graphopt.pipeline import make_pipeline

F = onnx.TensorProto.FLOAT


def _ort_runs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> bool:
    """Whether onnxruntime (its optimizer off) loads and runs `model` on `feeds`."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        sess = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        sess.run(None, feeds)
    except Exception:  # (onnxruntime's own error types: Fail, InvalidArgument, RuntimeException)
        return False
    return True


def _dropout(ratio: np.ndarray | None, mode: np.ndarray | None) -> onnx.ModelProto:
    """x [2,3] → Dropout(x, ratio, training_mode) → Relu → z, opset 13; the two constants
    as initializers (None: input left out)."""
    inits, inputs = [], ["x", "", ""]
    for i, (name, value) in enumerate((("ratio", ratio), ("mode", mode)), start=1):
        if value is not None:
            inits.append(numpy_helper.from_array(value, name))
            inputs[i] = name
    while inputs[-1] == "":
        inputs.pop()
    graph = helper.make_graph(
        [helper.make_node("Dropout", inputs, ["d"]), helper.make_node("Relu", ["d"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("z", F, [2, 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(
    ("ratio", "mode"),
    [
        (np.array(0.5, np.float32), np.zeros((0,), np.bool_)),
        (np.array(0.5, np.float32), np.array([False])),
        (np.array(0.5, np.float32), np.array([False, True])),
        (np.array([0.5], np.float32), None),
        (np.zeros((0,), np.float32), np.array(False)),
        (np.array(1.5, np.float32), None),
    ],
    ids=["mode-empty", "mode-shape-1", "mode-two", "ratio-shape-1", "ratio-empty", "ratio-1.5"],
)
def test_dropout_whose_constants_onnxruntime_rejects_is_left_alone(ratio, mode) -> None:
    """An empty training_mode constant was a PassError (IndexError: index 0 is out of bounds);
    a training_mode or ratio of another shape than a scalar, or a ratio outside [0, 1), made
    a model onnxruntime rejects ("training_mode of Dropout must be a scalar", "ratio must be in
    the range [0, 1)") into one it runs. The Dropout now stays, and says why."""
    model = _dropout(ratio, mode)
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    assert not _ort_runs(model, {"x": x})
    out = optimize(model, make_pipeline("t", ["eliminate-noops"]))
    assert [n.op_type for n in out.graph.node] == ["Dropout", "Relu"]


@pytest.mark.parametrize(
    ("ratio", "mode"),
    [
        (np.array(0.5, np.float32), np.array(False)),
        (np.array(0.0, np.float32), None),
        (None, None),
    ],
    ids=["mode-false", "ratio-0", "no-inputs"],
)
def test_inference_dropout_still_goes(ratio, mode) -> None:
    model = _dropout(ratio, mode)
    onnx.checker.check_model(model, full_check=True)
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    assert _ort_runs(model, {"x": x})
    out = optimize(model, make_pipeline("t", ["eliminate-noops"]))
    assert [n.op_type for n in out.graph.node] == ["Relu"]
