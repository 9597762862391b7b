"""quantize keeps the constants a quantization annotation names (SCALE_TENSOR, ZERO_POINT_TENSOR)
of a tensor that stays: its clean-up of the float weights the quantized ones replaced removed
every constant no node reads, so the annotation named nothing (the scale was lost), as
eliminate-dead-code did before 30162e6."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

import graphopt
from tests.test_quant_api import conv_model, feeds


def _annotated(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.05, np.float32), "ann_s"))
    model.graph.initializer.append(numpy_helper.from_array(np.array(0, np.int8), "ann_zp"))
    note = model.graph.quantization_annotation.add(tensor_name=tensor)
    note.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value="ann_s")
    note.quant_parameter_tensor_names.add(key="ZERO_POINT_TENSOR", value="ann_zp")
    return model


def test_quantize_keeps_an_annotation_of_a_graph_output_and_its_scale() -> None:
    model = _annotated(conv_model(), "y")
    q = graphopt.quantize(model, feeds(), method="minmax", target="onnxruntime")
    notes = {n.tensor_name: n for n in q.graph.quantization_annotation}
    assert "y" in notes
    names = {t.name: t for t in q.graph.initializer}
    for entry in notes["y"].quant_parameter_tensor_names:
        assert entry.value in names, entry.value
    assert float(numpy_helper.to_array(names["ann_s"])) == np.float32(0.05)
    onnx.checker.check_model(q, full_check=True)


def test_an_annotation_of_a_tensor_that_goes_keeps_nothing() -> None:
    model = _annotated(conv_model(), "no_such_tensor")
    q = graphopt.quantize(model, feeds(), method="minmax", target="onnxruntime")
    assert "ann_s" not in {t.name for t in q.graph.initializer}
    assert "ann_zp" not in {t.name for t in q.graph.initializer}
    assert not any(n.tensor_name == "no_such_tensor" for n in q.graph.quantization_annotation)
