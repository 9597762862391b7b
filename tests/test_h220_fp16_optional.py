"""fp16_model and optional types (H220): Optional, OptionalGetElement and OptionalHasElement
stay float32 (`FLOAT32_ONLY_OPS`). The converter leaves optional types as they are, so an
optional(tensor(float)) graph input read by OptionalGetElement, which it declared float16, made
an invalid model ('Inferred elem type differs from existing elem type: (1) vs (10)'; so for
onnx's test_optional_get_element_optional_tensor node case). An Optional of a sequence in an If
branch (test_if_opt) is refused with the sequence rule's one-line BackendError."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model


def test_an_optional_float_input_read_by_optionalgetelement_stays_valid() -> None:
    optional = h.make_value_info(
        "o", h.make_optional_type_proto(h.make_tensor_type_proto(T.FLOAT, [3]))
    )
    nodes = [
        h.make_node("OptionalGetElement", ["o"], ["t"]),
        h.make_node("Add", ["t", "x"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [optional, h.make_tensor_value_info("x", T.FLOAT, [3])],
        [h.make_tensor_value_info("y", T.FLOAT, [3])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"o": np.float32([1, 2, 3]), "x": np.float32([0.5, 0.25, 0.125])}
    np.testing.assert_allclose(run(half, feeds)["y"], run(model, feeds)["y"], rtol=1e-3)
