"""drop-zero-rnn-states keeps a zero initial state whose batch dim is fixed where X's batch is
not known to be that number. A [1, 1, H] zero (a state traced at batch 1) before an LSTM
whose X is declared [T, N, IN] fails the original at any batch but 1 ('Input initial_h must
have shape {1,2,5}'); dropped, the rewritten model ran there (H208 refused only a fixed batch
that differs from a fixed X batch)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from tests.fusion_models import run_at, run_passes

T, IN, H = 3, 4, 5


def lstm(x_batch: int | str, h0: str = "fixed") -> onnx.ModelProto:
    """LSTM(x[T, x_batch, IN], W, R) with initial_h = initial_c = a zero state: a [1, 1, H]
    initializer ("fixed") or torch's ConstantOfShape([1, Shape(x)[1], H]) ("from_x")."""
    inits = [
        numpy_helper.from_array(np.linspace(-0.5, 0.5, 4 * H * IN, dtype=np.float32).reshape(1, 4 * H, IN), "W"),
        numpy_helper.from_array(np.linspace(0.4, -0.4, 4 * H * H, dtype=np.float32).reshape(1, 4 * H, H), "R"),
    ]  # fmt: skip
    nodes = []
    if h0 == "fixed":
        inits.append(numpy_helper.from_array(np.zeros((1, 1, H), np.float32), "h0"))
    else:
        inits += [
            numpy_helper.from_array(np.array([1], np.int64), "b0"),
            numpy_helper.from_array(np.array([2], np.int64), "b1"),
            numpy_helper.from_array(np.array([1], np.int64), "dirs"),
            numpy_helper.from_array(np.array([H], np.int64), "hidden"),
        ]
        nodes += [
            helper.make_node("Shape", ["x"], ["sx"]),
            helper.make_node("Slice", ["sx", "b0", "b1"], ["batch"]),
            helper.make_node("Concat", ["dirs", "batch", "hidden"], ["dims"], axis=0),
            helper.make_node("ConstantOfShape", ["dims"], ["h0"]),
        ]
    nodes.append(
        helper.make_node("LSTM", ["x", "W", "R", "", "", "h0", "h0"], ["y", "yh"], hidden_size=H)
    )
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, x_batch, IN])],
        [helper.make_tensor_value_info("yh", TensorProto.FLOAT, [1, x_batch, H])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def x_feed(batch: int) -> dict[str, np.ndarray]:
    n = T * batch * IN
    return {"x": np.linspace(-2.0, 2.0, n, dtype=np.float32).reshape(T, batch, IN)}


def lstm_states(model: onnx.ModelProto) -> list[str]:
    return next(list(n.input[5:]) for n in model.graph.node if n.op_type == "LSTM")


@pytest.mark.parametrize("pipeline", ["pass", "default"])
def test_a_fixed_batch_state_before_a_dynamic_batch_stays(pipeline):
    model = lstm("N")
    if pipeline == "pass":
        out, _ = run_passes(model, ["drop-zero-rnn-states"])
    else:
        out = graphopt.optimize(model)
    assert lstm_states(out) == ["h0", "h0"]
    with pytest.raises(Exception, match="initial_h"):  # the original, at batch 2
        run_at(model, x_feed(2), level="disable")
    with pytest.raises(Exception, match="initial_h"):
        run_at(out, x_feed(2), level="disable")
    np.testing.assert_array_equal(
        run_at(out, x_feed(1), level="disable")["yh"],
        run_at(model, x_feed(1), level="disable")["yh"],
    )


@pytest.mark.parametrize(
    "x_batch, h0", [(1, "fixed"), ("N", "from_x")], ids=["static-batch-1", "torch-pattern"]
)
def test_a_state_that_fits_is_still_dropped(x_batch, h0):
    model = lstm(x_batch, h0)
    out, _ = run_passes(model, ["drop-zero-rnn-states", "eliminate-dead-code"])
    assert lstm_states(out) == ["", ""]
    for batch in [1] if x_batch == 1 else [1, 3]:
        want = run_at(model, x_feed(batch), level="disable")["yh"]
        np.testing.assert_array_equal(run_at(out, x_feed(batch), level="disable")["yh"], want)
