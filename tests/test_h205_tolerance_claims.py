"""What README's merge --tolerance paragraph and hashing's docstrings say, held to the code.

13b0bf1 said "weights of one model are never merged with each other": a weight is not compared
with its own model's, but two weights of one model that are both nearest to one weight of an
earlier model are both identified with it (the second model's two MatMul weights 0.8% apart,
both within 1% of the first model's, became one tensor; since H231 only the first is). And bfloat16 weights (ml_dtypes, not
a numpy float) are compared bitwise only, where float16 and float64 share within T.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.multitask import merge_with_report

RNG = np.random.default_rng(205)
W = RNG.standard_normal((4, 4)).astype(np.float32)


def _matmuls(*weights: np.ndarray) -> onnx.ModelProto:
    """x -> MatMul(w0) -> MatMul(w1) -> ... (each weight stored as given, Cast to float)."""
    nodes, inits, prev = [], [], "x"
    for i, w in enumerate(weights):
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Cast", [f"w{i}"], [f"f{i}"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("MatMul", [prev, f"f{i}"], [f"y{i}"]))
        prev = f"y{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 4])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_two_weights_of_one_model_near_one_earlier_weight_the_first_reads_it() -> None:
    # (H231: both read it before, one tensor for two of the model's names, which split could
    # not give back; the second now keeps its own value)
    first = _matmuls(W)
    second = _matmuls(W * np.float32(1.004), W * np.float32(0.996))  # 0.8% apart
    merged, report = merge_with_report([first, second], prefixes=["a_", "b_"], tolerance=0.01)
    assert [t.name for t in merged.graph.initializer] == ["w0", "w1"]
    np.testing.assert_array_equal(
        numpy_helper.to_array(merged.graph.initializer[1]), W * np.float32(0.996)
    )
    assert report.shared_params == W.size
    # alone (no weight of another model near them) they stay two
    alone, _ = merge_with_report([_matmuls(-W), second], prefixes=["a_", "b_"], tolerance=0.01)
    assert len(alone.graph.initializer) == 3


@pytest.mark.parametrize(
    ("dtype", "shared"),
    [(np.float16, True), (np.float64, True), (ml_dtypes.bfloat16, False)],
    ids=["float16", "float64", "bfloat16"],
)
def test_which_float_types_a_tolerance_shares(dtype: type, shared: bool) -> None:
    first = _matmuls(W.astype(dtype))
    second = _matmuls((W * np.float32(1.02)).astype(dtype))
    _, report = merge_with_report([first, second], tolerance=0.05)
    assert report.shared_params == (W.size if shared else 0)
