"""H166 adversarial review of graphopt.distill: soft targets, batches, the loss reference."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.distill import (
    load_targets,
    log_softmax,
    softmax,
    write_targets,
)


def _model(nodes, inputs, outputs, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "h166", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _identity(elem: int = TensorProto.FLOAT, classes: int = 4) -> onnx.ModelProto:
    """y = x, x[n, classes]: the samples are the teacher's logits."""
    return _model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", elem, ["n", classes])],
        [helper.make_tensor_value_info("y", elem, ["n", classes])],
    )


def test_a_small_temperature_gives_the_one_hot_limit_not_nan(tmp_path):
    # z / T overflowed to inf for T = 1e-310 (finite, > 0, accepted), inf − inf = NaN: the
    # soft targets were NaN and the run exited 0. softmax(z / T) → one-hot of argmax z as T → 0
    z = np.array([[1.0, 3.0, 2.0, -1.0]])
    np.testing.assert_array_equal(softmax(z, 1e-310, axis=1), [[0.0, 1.0, 0.0, 0.0]])
    assert log_softmax(z, 1e-310, axis=1)[0, 1] == 0.0
    feeds = [{"x": z.astype(np.float32)}, {"x": np.array([[5.0, 4.0, 4.5, 0.0]], np.float32)}]
    write_targets(_identity(), feeds, tmp_path / "t", logits=["y"], temperature=1e-310)
    stored = np.asarray(load_targets(tmp_path / "t")["y"])
    np.testing.assert_array_equal(stored, [[0, 1, 0, 0], [1, 0, 0, 0]])
