"""drop-zero-rnn-states drops a zero state whose batch the nodes show to be X's, where
inference names neither (H232, after f9b93a0).

f9b93a0 took a symbolic batch only where inference gave the state X's own dim name. An X whose
batch inference leaves unnamed (a graph input dim with neither a name nor a number, as
silero_vad declares its input, or an Unsqueeze of an If's output) has none, so torch's state
ConstantOfShape(Concat([1], Shape(x)[1], [H])), which the parent dropped, was kept, though its
batch is x's dim 1 by construction. Now the batch also passes when the nodes that make the
state read it from the dim X's batch is (through Identity, Cast, Transpose, Unsqueeze;
Gather, Slice or Shape of Shape(t) in the Concat). A batch read from another input is still
refused (the original fails there)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.fusion_models import run_at, run_passes

T, IN, H = 3, 4, 5


def _i64(name: str, value: object) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, np.int64), name)


def lstm(form: str) -> onnx.ModelProto:
    """LSTM(X[T, ?, IN]) with a zero initial_h made from a Shape: `form` says of which tensor
    and how. X is the graph input x [T, ?, IN], except for "unsqueezed" (X = Unsqueeze(v, 0),
    v a graph input [?, IN]: silero_vad's form, T = 1)."""
    inits = [
        numpy_helper.from_array(np.linspace(-0.5, 0.5, 4 * H * IN, dtype=np.float32).reshape(1, 4 * H, IN), "W"),
        numpy_helper.from_array(np.linspace(0.4, -0.4, 4 * H * H, dtype=np.float32).reshape(1, 4 * H, H), "R"),
        _i64("dirs", [1]), _i64("hidden", [H]), _i64("zero", [0]), _i64("one", 1),
        _i64("b1", [1]), _i64("b2", [2]),
    ]  # fmt: skip
    x = "x"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, None, IN])]
    nodes = [helper.make_node("Shape", ["x"], ["sx"])]
    if form == "slice":  # torch: Slice(Shape(x), [1], [2])
        nodes.append(helper.make_node("Slice", ["sx", "b1", "b2"], ["batch"]))
    elif form == "gather":  # Unsqueeze(Gather(Shape(x), 1), [0])
        nodes += [
            helper.make_node("Gather", ["sx", "one"], ["g"], axis=0),
            helper.make_node("Unsqueeze", ["g", "zero"], ["batch"]),
        ]
    elif form == "unsqueezed":
        inputs = [helper.make_tensor_value_info("v", TensorProto.FLOAT, [None, IN])]
        x = "xu"
        nodes = [
            helper.make_node("Unsqueeze", ["v", "zero"], ["xu"]),
            helper.make_node("Shape", ["v"], ["sv"]),
            helper.make_node("Gather", ["sv", "b1"], ["unused"], axis=0),  # (a 1-D index)
            helper.make_node("Gather", ["sv", "zero"], ["batch"], axis=0),
        ]
    elif form == "other-input":  # the batch of another input: the original fails
        inputs.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, None, H]))
        nodes = [
            helper.make_node("Shape", ["h"], ["sh"]),
            helper.make_node("Slice", ["sh", "b1", "b2"], ["batch"]),
        ]
    elif form == "other-dim":  # x's dim 2 (IN), not its batch
        nodes.append(
            helper.make_node("Slice", ["sx", "b2", _i64_name(inits, "b3", [3])], ["batch"])
        )
    nodes += [
        helper.make_node("Concat", ["dirs", "batch", "hidden"], ["dims"], axis=0),
        helper.make_node("ConstantOfShape", ["dims"], ["h0"]),
        helper.make_node("LSTM", [x, "W", "R", "", "", "h0"], ["y", "yh"], hidden_size=H),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("yh", TensorProto.FLOAT, [1, None, H])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _i64_name(inits: list[onnx.TensorProto], name: str, value: object) -> str:
    inits.append(_i64(name, value))
    return name


def feeds(form: str, batch: int, h_batch: int | None = None) -> dict[str, np.ndarray]:
    steps = 1 if form == "unsqueezed" else T
    x = np.linspace(-2.0, 2.0, steps * batch * IN, dtype=np.float32).reshape(steps, batch, IN)
    if form == "unsqueezed":
        return {"v": x[0]}
    if h_batch is not None:
        return {"x": x, "h": np.ones((1, h_batch, H), np.float32)}
    return {"x": x}


def initial_h(model: onnx.ModelProto) -> str:
    return next(n.input[5] for n in model.graph.node if n.op_type == "LSTM")


@pytest.mark.parametrize("form", ["slice", "gather", "unsqueezed"])
def test_a_zero_state_of_x_s_unnamed_batch_is_dropped(form: str) -> None:
    model = lstm(form)
    out, report = run_passes(model, ["drop-zero-rnn-states"])
    refused = [e[3] for e in report.explain if e[0] == "drop-zero-rnn-states" and e[2] == "refused"]
    assert initial_h(out) == "", refused
    for batch in (1, 3):
        np.testing.assert_array_equal(
            run_at(out, feeds(form, batch), level="disable")["yh"],
            run_at(model, feeds(form, batch), level="disable")["yh"],
        )


def test_a_zero_state_with_another_input_s_unnamed_batch_is_kept() -> None:
    model = lstm("other-input")
    out, _ = run_passes(model, ["drop-zero-rnn-states"])
    assert initial_h(out) == "h0"
    for m in (model, out):  # batches 2 and 3: both fail
        with pytest.raises(Exception, match="initial_h"):
            run_at(m, feeds("other-input", 2, 3), level="disable")


def test_a_zero_state_with_another_dim_of_x_is_kept() -> None:
    model = lstm("other-dim")
    out, _ = run_passes(model, ["drop-zero-rnn-states"])
    assert initial_h(out) == "h0"
    for m in (model, out):  # x's dim 2 is 4, its batch 2
        with pytest.raises(Exception, match="initial_h"):
            run_at(m, feeds("other-dim", 2), level="disable")


def test_a_zero_state_of_x_s_batch_is_dropped_beside_another_input_of_that_name() -> None:
    """x[T, N, IN] and lengths[N]: 'N' is declared twice, which f9b93a0 refused whatever the
    state's source (onnxruntime does not hold the two equal); a state read from Shape(x)
    itself is x's batch however the inputs are named."""
    model = lstm("slice")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "N"
    model.graph.input.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["N"]))
    out, _ = run_passes(model, ["drop-zero-rnn-states"])
    assert initial_h(out) == ""
    for batch in (1, 3):
        f = {**feeds("slice", batch), "lengths": np.full(batch, T, np.int32)}
        np.testing.assert_array_equal(
            run_at(out, f, level="disable")["yh"], run_at(model, f, level="disable")["yh"]
        )
