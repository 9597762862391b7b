"""Final review of session 15's diff (H130): what it found wrong, each pinned by a test."""

from __future__ import annotations

import warnings

import numpy as np
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32


def test_a_float32_range_whose_difference_overflows_warns_nothing() -> None:
    # the size bound takes (limit - start) in float32 as onnxruntime 1.23 does (8a3ef80): an
    # overflow there is inf (the length undefined in 1.23: not folded), and no RuntimeWarning
    # on the user's stderr (`graphopt optimize` printed "RuntimeWarning: overflow encountered
    # in subtract" and the source line: the bound runs outside the kernels' np.errstate)
    from graphopt.api import optimize
    from graphopt.passes._folding_ops import output_elements_bound

    big = float(np.finfo(F32).max)
    values = {"s": -big, "l": big, "d": big / 30}
    inputs = [np.array(v, F32) for v in values.values()]
    node = helper.make_node("Range", ["s", "l", "d"], ["r"])
    graph = helper.make_graph(
        [node, helper.make_node("Add", ["x", "r"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [60])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [60])],
        [numpy_helper.from_array(a, n) for n, a in zip(values, inputs, strict=True)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert output_elements_bound(node, inputs, 17) == 60
        out = optimize(model, "default")
    assert [n.op_type for n in out.graph.node] == ["Range", "Add"]  # left to the runtime
