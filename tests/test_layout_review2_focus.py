"""focus-to-space-to-depth leaves a Focus of integer or bool tensors alone: onnxruntime's
SpaceToDepth kernels take float and double only, so the rewritten model could not run."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.pipeline import make_pipeline

BIG = 2**63 - 1


def _focus_model(elem_type: int, cast_to: int | None = None) -> onnx.ModelProto:
    """x[:, :, dy::2, dx::2] for the four phases in SpaceToDepth's order, joined on channels
    (of Cast(x, cast_to) when given: a tensor whose type only shape inference knows)."""
    nodes, inits = [], []
    source = "x"
    if cast_to is not None:
        nodes.append(helper.make_node("Cast", ["x"], ["xc"], to=cast_to))
        source = "xc"
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for part, value in (("s", [dy, dx]), ("e", [BIG, BIG]), ("a", [2, 3]), ("t", [2, 2])):
            inits.append(onnx.numpy_helper.from_array(np.array(value, np.int64), f"{part}{k}"))
        nodes.append(
            helper.make_node("Slice", [source, f"s{k}", f"e{k}", f"a{k}", f"t{k}"], [f"p{k}"])
        )
    nodes.append(helper.make_node("Concat", ["p0", "p1", "p2", "p3"], ["y"], axis=1))
    graph = helper.make_graph(
        nodes,
        "focus",
        [helper.make_tensor_value_info("x", elem_type, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", cast_to or elem_type, [1, 8, 2, 2])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    "elem_type",
    [TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL],
    ids=["i64", "i32", "bool"],
)
def test_focus_of_a_type_without_a_space_to_depth_kernel_is_left_alone(elem_type):
    model = _focus_model(elem_type)
    result = graphopt.optimize(model, make_pipeline("p", ["focus-to-space-to-depth"]))
    onnx.checker.check_model(result, full_check=True)
    assert "SpaceToDepth" not in [n.op_type for n in result.graph.node]
    x = (np.arange(32).reshape(1, 2, 4, 4) % 5).astype(helper.tensor_dtype_to_np_dtype(elem_type))
    np.testing.assert_array_equal(_run(result, x), _run(model, x))


def test_focus_of_a_computed_int_tensor_is_left_alone():
    """The type of a tensor no graph input declares comes from shape inference."""
    model = _focus_model(TensorProto.FLOAT, cast_to=TensorProto.INT64)
    result = graphopt.optimize(model, make_pipeline("p", ["focus-to-space-to-depth"]))
    assert "SpaceToDepth" not in [n.op_type for n in result.graph.node]
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    np.testing.assert_array_equal(_run(result, x), _run(model, x))


def test_float_focus_still_becomes_space_to_depth(monkeypatch):
    """A Focus reading a graph input takes its type from the input's declaration: checking it
    costs no shape inference (common_det's simplify runs none at all)."""
    import graphopt.analysis.shapes as shapes

    def no_inference(graph):
        raise AssertionError("shape inference ran")

    monkeypatch.setattr(shapes, "_infer", no_inference)
    model = _focus_model(TensorProto.FLOAT)
    result = graphopt.optimize(model, make_pipeline("p", ["focus-to-space-to-depth"]))
    assert [n.op_type for n in result.graph.node] == ["SpaceToDepth"]
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    np.testing.assert_array_equal(_run(result, x), _run(model, x))
