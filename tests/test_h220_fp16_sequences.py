"""fp16_model and sequences of float tensors (H220): a one-line BackendError where one would
have to stay float32, which the converter cannot do.

A graph input or output that is such a sequence became a sequence of float16 tensors (the
converter keeps tensor inputs and outputs only): onnxruntime refused the float32 feed ('TensorSeq:
tensor to be added has a different data type'), against fp16_model's promise of float32
inputs and outputs. A node kept float32 (SequenceInsert(seq, 1e5)) that reads or writes one
got the converter's tensor Cast on the sequence, an invalid model ("Type 'seq(tensor(float16))'
of input parameter (seq) of operator (Cast) ... is invalid")."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model
from graphopt.errors import BackendError

vi = h.make_tensor_value_info


def _model(
    nodes: list[onnx.NodeProto], inputs: list, outputs: list, inits: list
) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_a_sequence_graph_input_is_refused() -> None:
    model = _model(
        [h.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)],
        [h.make_tensor_sequence_value_info("s", T.FLOAT, [3])],
        [vi("y", T.FLOAT, None)],
        [],
    )
    with pytest.raises(BackendError, match=r"graph input 's' is a sequence of float tensors"):
        fp16_model(model)


def test_a_sequence_graph_output_is_refused() -> None:
    model = _model(
        [h.make_node("SplitToSequence", ["x"], ["s"], axis=0)],
        [vi("x", T.FLOAT, [4])],
        [h.make_tensor_sequence_value_info("s", T.FLOAT, None)],
        [],
    )
    with pytest.raises(BackendError, match=r"graph output 's' is a sequence of float tensors"):
        fp16_model(model)


def test_a_float32_node_on_a_sequence_is_refused() -> None:
    nodes = [
        h.make_node("SequenceConstruct", ["x"], ["seq"]),
        h.make_node("SequenceInsert", ["seq", "big"], ["seq2"], name="insert"),
        h.make_node("ConcatFromSequence", ["seq2"], ["y"], axis=0),
    ]
    model = _model(
        nodes,
        [vi("x", T.FLOAT, [3])],
        [vi("y", T.FLOAT, [6])],
        [nh.from_array(np.float32([1e5, 2, 3]), "big")],
    )
    with pytest.raises(BackendError, match=r"node 'insert' \(SequenceInsert\) stays float32"):
        fp16_model(model)


def test_sequences_inside_convert_as_before() -> None:
    nodes = [
        h.make_node("SplitToSequence", ["x"], ["seq"], axis=0),
        h.make_node("ConcatFromSequence", ["seq"], ["y"], axis=0),
    ]
    model = _model(nodes, [vi("x", T.FLOAT, [4])], [vi("y", T.FLOAT, [4])], [])
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": np.float32([1, 2, 3, 4.5])}
    np.testing.assert_array_equal(run(half, feeds)["y"], feeds["x"])
