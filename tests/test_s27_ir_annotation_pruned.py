"""A graph's quantization annotation of a tensor a pass removed is dropped with it, as its
value_info is: the default pipeline bypassed an Identity and kept an annotation naming its
output, which no longer existed (ort-fusions: a Conv output fused into FusedConv too)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import graphopt


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["a"]),
            helper.make_node("Relu", ["a"], ["r"]),
            helper.make_node("Identity", ["r"], ["i"]),
            helper.make_node("Conv", ["i", "w2"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
        [w1, w2],
    )
    for name in ("a", "r", "i", "y"):
        note = graph.quantization_annotation.add()
        note.tensor_name = name
        entry = note.quant_parameter_tensor_names.add()
        entry.key, entry.value = "SCALE_TENSOR", f"{name}_scale"
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _annotated(model: onnx.ModelProto) -> list[str]:
    return [a.tensor_name for a in model.graph.quantization_annotation]


def test_annotations_of_removed_tensors_are_dropped() -> None:
    out = graphopt.optimize(_model())
    assert "i" not in {o for n in out.graph.node for o in n.output}
    assert _annotated(out) == ["a", "r", "y"]
    fused = graphopt.optimize(_model(), "ort-fusions")
    live = {o for n in fused.graph.node for o in n.output}
    assert set(_annotated(fused)) == {"a", "r", "y"} & live and "y" in live


def test_no_pass_keeps_every_annotation() -> None:
    assert _annotated(graphopt.optimize(_model(), opt_level=-1)) == ["a", "r", "i", "y"]
