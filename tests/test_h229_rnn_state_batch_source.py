"""drop-zero-rnn-states drops a zero state only where its batch is shown to be X's.

The pass compared the state's dims with [directions, batch, hidden] only where both were
numbers, so a zero state whose batch inference gave a symbolic dim passed whatever that dim was:
ConstantOfShape(Shape(h)) with h a graph input [1, M, H] (or [1, ?, H], or [1, N, H] with x
[T, N, IN]: onnxruntime does not hold two inputs declaring N to one size) was dropped, and the
rewritten model ran a batch of x that the original refused. Now a symbolic dim must be X's own,
and a name more than one input dim declares is not. And an LSTM without hidden_size was
refused as having a "fixed batch" (its hidden dim, 5): the message now says what is missing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.fusion_models import run_at, run_passes

T, IN, H = 3, 4, 5


def lstm(
    h_batch: str | int | None, x_batch: str | int = "N", hidden: bool = True
) -> onnx.ModelProto:
    """LSTM(x[T, x_batch, IN], W, R) with initial_h = ConstantOfShape(Shape(h)), h a graph
    input [1, h_batch, H]; h_batch "x": the state is torch's [1, Shape(x)[1], H] instead."""
    inits = [
        numpy_helper.from_array(np.linspace(-0.5, 0.5, 4 * H * IN, dtype=np.float32).reshape(1, 4 * H, IN), "W"),
        numpy_helper.from_array(np.linspace(0.4, -0.4, 4 * H * H, dtype=np.float32).reshape(1, 4 * H, H), "R"),
    ]  # fmt: skip
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, x_batch, IN])]
    if h_batch == "x":
        inits += [
            numpy_helper.from_array(np.array([1], np.int64), "b0"),
            numpy_helper.from_array(np.array([2], np.int64), "b1"),
            numpy_helper.from_array(np.array([1], np.int64), "dirs"),
            numpy_helper.from_array(np.array([H], np.int64), "hidden"),
        ]
        nodes = [
            helper.make_node("Shape", ["x"], ["sx"]),
            helper.make_node("Slice", ["sx", "b0", "b1"], ["batch"]),
            helper.make_node("Concat", ["dirs", "batch", "hidden"], ["dims"], axis=0),
            helper.make_node("ConstantOfShape", ["dims"], ["h0"]),
        ]
    else:
        inputs.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, h_batch, H]))
        nodes = [
            helper.make_node("Shape", ["h"], ["sh"]),
            helper.make_node("ConstantOfShape", ["sh"], ["h0"]),
        ]
    attributes = {"hidden_size": H} if hidden else {}
    nodes.append(helper.make_node("LSTM", ["x", "W", "R", "", "", "h0"], ["y", "yh"], **attributes))
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("yh", TensorProto.FLOAT, [1, None, H])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def feeds(x_batch: int, h_batch: int | None) -> dict[str, np.ndarray]:
    x = np.linspace(-2.0, 2.0, T * x_batch * IN, dtype=np.float32).reshape(T, x_batch, IN)
    return {"x": x} if h_batch is None else {"x": x, "h": np.ones((1, h_batch, H), np.float32)}


def initial_h(model: onnx.ModelProto) -> str:
    return next(n.input[5] for n in model.graph.node if n.op_type == "LSTM")


def refusals(report) -> list[str]:
    return [e[3] for e in report.explain if e[0] == "drop-zero-rnn-states" and e[2] == "refused"]


@pytest.mark.parametrize(
    ("h_batch", "reason"),
    [
        ("N", "declared by more than one input dim"),
        ("M", "not known to be 'x''s"),
        (None, "not known"),
    ],
    ids=["same-name", "other-name", "unnamed"],
)
def test_a_zero_state_with_a_batch_of_another_input_is_kept(
    h_batch: str | None, reason: str
) -> None:
    model = lstm(h_batch)
    out, report = run_passes(model, ["drop-zero-rnn-states"])
    assert initial_h(out) == "h0"
    assert any(reason in r for r in refusals(report)), refusals(report)
    with pytest.raises(Exception, match="initial_h"):  # batches 2 and 3: the original fails
        run_at(model, feeds(2, 3), level="disable")
    with pytest.raises(Exception, match="initial_h"):
        run_at(out, feeds(2, 3), level="disable")


@pytest.mark.parametrize("x_batch", ["N", 2])
def test_a_zero_state_with_x_s_batch_is_still_dropped(x_batch: str | int) -> None:
    model = lstm("x", x_batch)
    out, _ = run_passes(model, ["drop-zero-rnn-states"])
    assert initial_h(out) == ""
    np.testing.assert_array_equal(
        run_at(out, feeds(2, None), level="disable")["yh"],
        run_at(model, feeds(2, None), level="disable")["yh"],
    )


def test_an_lstm_without_hidden_size_is_refused_for_that_reason() -> None:
    model = lstm("x", 2, hidden=False)
    out, report = run_passes(model, ["drop-zero-rnn-states"])
    assert initial_h(out) == "h0"
    assert refusals(report) == ["LSTM has no hidden_size to check 'h0''s dims against"]
