"""Models with sparse initializers: merge reads them as the dense tensors they stand for (as
onnxruntime does when it loads them), and split keeps the ones the kept nodes read."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.multitask import MergeError, merge_with_report, split

X = {"x": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5}


def sparse_model(values: tuple[float, float], *, coordinates: bool = False) -> onnx.ModelProto:
    """y = Relu(x) + w, w a 2x3 sparse initializer with two nonzero entries."""
    vals = numpy_helper.from_array(np.array(values, np.float32), "w")
    idx = np.array([[0, 1], [1, 1]] if coordinates else [1, 4], np.int64)
    sparse = helper.make_sparse_tensor(vals, numpy_helper.from_array(idx, "w_idx"), [2, 3])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "w"], ["y"])],
        "sparse",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    graph.sparse_initializer.append(sparse)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_models_with_sparse_initializers_merge():
    a, b = sparse_model((2.0, 3.0)), sparse_model((5.0, 7.0), coordinates=True)
    merged, report = merge_with_report([a, b])
    onnx.checker.check_model(merged, full_check=True)
    got = ort_run(merged, X)
    np.testing.assert_array_equal(got["m0_y"], ort_run(a, X)["y"])
    np.testing.assert_array_equal(got["m1_y"], ort_run(b, X)["y"])
    relu = np.maximum(X["x"], 0)
    np.testing.assert_array_equal(got["m1_y"], relu + np.array([[0, 5, 0], [0, 7, 0]], np.float32))
    assert report.shared_nodes == 1  # the Relu


def test_equal_sparse_initializers_are_one_tensor():
    a, b = sparse_model((2.0, 3.0)), sparse_model((2.0, 3.0), coordinates=True)
    merged, _ = merge_with_report([a, b])
    assert len(merged.graph.initializer) + len(merged.graph.sparse_initializer) == 1
    got = ort_run(merged, X)
    np.testing.assert_array_equal(got["m0_y"], ort_run(a, X)["y"])
    np.testing.assert_array_equal(got["m1_y"], got["m0_y"])


def test_split_keeps_the_sparse_initializers_it_reads():
    model = sparse_model((2.0, 3.0))
    part = split(model, ["y"], check=False)
    assert [t.values.name for t in part.graph.sparse_initializer] == ["w"]
    np.testing.assert_array_equal(ort_run(part, X)["y"], ort_run(model, X)["y"])
    relu_only = split(model, ["r"], check=False)
    assert len(relu_only.graph.sparse_initializer) == 0  # not read: dropped


def test_split_checks_a_sparse_initializer_as_onnx_types_it():
    """onnx's full check types a sparse initializer sparse_tensor, which Add does not take (the
    input model fails it too; onnxruntime densifies): the split model's check says so, not
    that 'w' is read before any node makes it."""
    with pytest.raises(MergeError, match=r"sparse_tensor\(float\)"):
        split(sparse_model((2.0, 3.0)), ["y"])


def sparse_body_model(values: tuple[float, float]) -> onnx.ModelProto:
    """y = If(sum(x) > 0, x + w, x), w a sparse initializer of the then-branch."""
    vals = numpy_helper.from_array(np.array(values, np.float32), "w")
    idx = numpy_helper.from_array(np.array([1, 4], np.int64), "w_idx")
    then = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["t_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [2, 3])],
    )
    then.sparse_initializer.append(helper.make_sparse_tensor(vals, idx, [2, 3]))
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [2, 3])],
    )
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
    ]
    graph = helper.make_graph(
        nodes,
        "iff",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_sparse_initializers_of_subgraph_bodies_stay_local():
    a, b = sparse_body_model((2.0, 3.0)), sparse_body_model((5.0, 7.0))
    merged, _ = merge_with_report([a, b], check=False)
    x = {"x": np.ones((2, 3), np.float32)}
    got = ort_run(merged, x)
    np.testing.assert_array_equal(got["m0_y"], ort_run(a, x)["y"])
    np.testing.assert_array_equal(got["m1_y"], ort_run(b, x)["y"])
    np.testing.assert_array_equal(got["m1_y"], [[1, 6, 1], [1, 8, 1]])


def test_a_sparse_initializer_that_cannot_be_read_is_a_one_line_merge_error():
    model = sparse_model((2.0, 3.0))
    model.graph.sparse_initializer[0].indices.CopyFrom(
        numpy_helper.from_array(np.array([1, 99], np.int64), "w_idx")
    )
    with pytest.raises(MergeError, match=r"'m0_': cannot read sparse initializer 'w' densely"):
        merge_with_report([model, sparse_model((2.0, 3.0))])
