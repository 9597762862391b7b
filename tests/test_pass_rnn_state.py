"""drop-zero-rnn-states: an all-zero initial state of RNN/GRU/LSTM is left out, and only then."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import graphopt
from tests.conftest import assert_same_outputs
from tests.models_util import ops, run

F32 = np.float32
HIDDEN, INPUT, DIRS = 8, 5, 2


def torch_lstm(op: str = "LSTM", fill: float = 0.0, state_input: bool = False) -> onnx.ModelProto:
    """What torch.onnx exports for `nn.LSTM(bidirectional=True)(x)` without h0 (as in
    brainmaze-eeg-models' seizure detector): h0 = c0 = Slice(ConstantOfShape([2, batch, H]))
    with the batch read from x at run time. `state_input`: h0 is a graph input instead."""
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((DIRS, gates * HIDDEN, INPUT)) * 0.3).astype(F32)
    r = (rng.standard_normal((DIRS, gates * HIDDEN, HIDDEN)) * 0.3).astype(F32)
    b = (rng.standard_normal((DIRS, 2 * gates * HIDDEN)) * 0.1).astype(F32)
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(r, "R"),
        numpy_helper.from_array(b, "B"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([DIRS], np.int64), "dirs"),
        numpy_helper.from_array(np.array([HIDDEN], np.int64), "hidden"),
        numpy_helper.from_array(np.array([DIRS], np.int64), "end"),
    ]
    fill_value = helper.make_tensor("value", TensorProto.FLOAT, [1], [fill])
    state = ["h0"] * (2 if op == "LSTM" else 1)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["batch"], axis=0),
        helper.make_node("Concat", ["dirs", "batch", "hidden"], ["dims"], axis=0),
        helper.make_node("ConstantOfShape", ["dims"], ["zeros"], value=fill_value),
        helper.make_node("Slice", ["zeros", "zero", "end", "zero"], ["sliced"]),
        helper.make_node("Identity", ["h" if state_input else "sliced"], ["h0"]),
        helper.make_node(
            op,
            ["x", "W", "R", "B", "", *state],
            ["y"],
            hidden_size=HIDDEN,
            direction="bidirectional",
            name="rnn",
        ),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "N", INPUT])]
    if state_input:
        inputs.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, [DIRS, "N", HIDDEN]))
    graph = helper.make_graph(
        nodes,
        "rnn",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", DIRS, "N", HIDDEN])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds(batch: int, state_input: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    out = {"x": rng.standard_normal((6, batch, INPUT)).astype(F32)}
    if state_input:
        out["h"] = rng.standard_normal((DIRS, batch, HIDDEN)).astype(F32)
    return out


def test_zero_lstm_states_are_dropped_with_the_subgraph_that_made_them():
    model = torch_lstm()
    out = run(model, "drop-zero-rnn-states", "eliminate-dead-code")
    assert ops(out) == ["LSTM"]
    assert [i for i in out.graph.node[0].input[5:] if i] == []
    for batch in (1, 3):
        assert_same_outputs(model, out, feeds(batch))


def test_zero_gru_and_rnn_states_are_dropped():
    for op in ("GRU", "RNN"):
        model = torch_lstm(op)
        out = run(model, "drop-zero-rnn-states", "eliminate-dead-code")
        assert ops(out) == [op], op
        assert_same_outputs(model, out, feeds(2))


def test_a_nonzero_or_unknown_state_is_kept():
    for model in (torch_lstm(fill=0.5), torch_lstm(state_input=True)):
        out = run(model, "drop-zero-rnn-states", "eliminate-dead-code")
        assert out.graph.node[-1].input[5] == "h0"
        assert out.graph.node[-1].input[6] == "h0"
        state = any(i.name == "h" for i in model.graph.input)
        assert_same_outputs(model, out, feeds(2, state))


def test_the_default_pipeline_drops_a_dynamic_batch_zero_state():
    model = torch_lstm()
    out = graphopt.optimize(model)
    assert ops(out) == ["LSTM"]
    assert_same_outputs(model, out, feeds(2))
