"""Review 3 of the lossless round trip: what `optimize` with no passes (and the built-in
pipelines) must keep of a model, each case a defect found and fixed."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto
from onnx import numpy_helper as nh

import graphopt
from graphopt.backends.onnxruntime import run
from graphopt.pipeline import Pipeline

NO_PASSES = Pipeline("none", [])


def _with_sparse_initializer() -> onnx.ModelProto:
    """y = x + sp, sp a sparse initializer that the graph's value_info describes."""
    sparse = oh.make_sparse_tensor(
        nh.from_array(np.ones(1, np.float32), "sp"),
        nh.from_array(np.array([1], np.int64), "sp_i"),
        [3],
    )
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "sp"], ["y"], name="add")],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        value_info=[oh.make_tensor_value_info("sp", TensorProto.FLOAT, [3], doc_string="sp")],
        sparse_initializer=[sparse],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=9)


@pytest.mark.parametrize("pipeline", [NO_PASSES, "default"], ids=["no-passes", "default"])
def test_value_info_of_a_sparse_initializer_is_kept(pipeline):
    """Fails on the parent: commit pruned every value_info that was not a node output, graph
    input or dense initializer, so a sparse initializer's description was dropped even by a
    round trip with no passes."""
    model = _with_sparse_initializer()
    out = graphopt.optimize(model, pipeline)
    assert [vi.SerializeToString() for vi in out.graph.value_info] == [
        vi.SerializeToString() for vi in model.graph.value_info
    ]
    assert len(out.graph.sparse_initializer) == 1
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(run(out, {"x": x})["y"], x + np.array([0, 1, 0], np.float32))
