"""drop-zero-rnn-states drops a zero initial state only when it is one the op takes: X's
element type and [directions, batch, hidden] (batch first with layout=1). A zero of another
type, or of a shape that would broadcast, fails the original in onnxruntime; dropping it made
the rewritten model run (its absent default is a state of the right shape)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import assert_same_outputs
from tests.models_util import run

T, B, IN, H = 3, 2, 4, 5


def lstm(h0: np.ndarray, direction: str = "forward", layout: int = 0) -> onnx.ModelProto:
    """LSTM(x, W, R) with initial_h = initial_c = the constant `h0`."""
    d = 2 if direction == "bidirectional" else 1
    inits = [
        numpy_helper.from_array(np.linspace(-0.5, 0.5, d * 4 * H * IN, dtype=np.float32).reshape(d, 4 * H, IN), "W"),
        numpy_helper.from_array(np.linspace(0.4, -0.4, d * 4 * H * H, dtype=np.float32).reshape(d, 4 * H, H), "R"),
        numpy_helper.from_array(h0, "h0"),
    ]  # fmt: skip
    node = helper.make_node(
        "LSTM", ["x", "W", "R", "", "", "h0", "h0"], ["y", "yh"], name="lstm",
        hidden_size=H, direction=direction, layout=layout,
    )  # fmt: skip
    x_dims = [B, T, IN] if layout else [T, B, IN]
    yh_dims = [B, d, H] if layout else [d, B, H]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("yh", TensorProto.FLOAT, yh_dims)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def x_feed() -> dict[str, np.ndarray]:
    return {"x": np.linspace(-2.0, 2.0, T * B * IN, dtype=np.float32).reshape(T, B, IN)}


@pytest.mark.parametrize(
    "h0",
    [
        np.zeros((1, 1, H), np.float32),  # would broadcast over the batch
        np.zeros((1, B, H + 1), np.float32),  # another hidden size
        np.zeros((2, B, H), np.float32),  # two directions for a forward LSTM
        np.zeros((B, H), np.float32),  # rank 2
        np.zeros((1, B, H), np.float64),  # another element type
    ],
    ids=["broadcast", "hidden", "directions", "rank2", "double"],
)
def test_a_zero_state_the_op_does_not_take_is_kept(h0: np.ndarray) -> None:
    model = lstm(h0)
    out = graphopt_run(model)
    assert list(out.graph.node[0].input[5:]) == ["h0", "h0"]


def graphopt_run(model: onnx.ModelProto) -> onnx.ModelProto:
    import graphopt
    from graphopt.pipeline import make_pipeline

    return graphopt.optimize(model, make_pipeline("test", ["drop-zero-rnn-states"]))


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_a_zero_state_of_the_right_shape_is_still_dropped(direction: str) -> None:
    d = 2 if direction == "bidirectional" else 1
    model = lstm(np.zeros((d, B, H), np.float32), direction)
    out = run(model, "drop-zero-rnn-states")
    assert [i for i in out.graph.node[0].input[5:] if i] == []
    assert_same_outputs(model, out, x_feed())


def test_layout_1_takes_the_batch_first() -> None:
    kept = graphopt_run(lstm(np.zeros((1, B, H), np.float32), layout=1))  # [dirs, batch, H]
    assert list(kept.graph.node[0].input[5:]) == ["h0", "h0"]
    dropped = graphopt_run(lstm(np.zeros((B, 1, H), np.float32), layout=1))
    assert [i for i in dropped.graph.node[0].input[5:] if i] == []
