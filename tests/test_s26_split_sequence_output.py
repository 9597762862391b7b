"""split took an output's type from the model's declarations only where it was a tensor type:
a graph input declared as a sequence (valid ONNX) asked for as an output fell through to shape
inference, which types no graph input, and split refused with "cannot tell the type of
tensor(s) s; run shape inference" though the model says it. Any declared type is taken now."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as h
import onnxruntime as ort
from onnx import TensorProto

from graphopt.multitask import split


def _model() -> onnx.ModelProto:
    graph = h.make_graph(
        [h.make_node("SequenceLength", ["s"], ["n"])],
        "g",
        [h.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2])],
        [h.make_tensor_value_info("n", TensorProto.INT64, [])],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_sequence_input_as_an_output() -> None:
    model = _model()
    part = split(model, ["s", "n"])
    assert [o.name for o in part.graph.output] == ["s", "n"]
    assert part.graph.output[0].type == model.graph.input[0].type
    session = ort.InferenceSession(part.SerializeToString(), providers=["CPUExecutionProvider"])
    values = [np.arange(2, dtype=np.float32) + k for k in range(3)]
    seq, n = session.run(None, {"s": values})
    assert n == 3
    assert len(seq) == 3
    for got, want in zip(seq, values, strict=True):
        np.testing.assert_array_equal(got, want)


def test_cli_splits_a_sequence_input(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from graphopt.cli import main

    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_model(), path)
    assert main(["split", str(path), "-o", str(out), "--outputs", "s"]) == 0
    assert [o.name for o in onnx.load(out).graph.output] == ["s"]
