"""Adversarial review of the layout passes (H148): what they must leave alone.

A Transpose whose perm is not a permutation of 0..n-1, and a Concat whose axis is out of its
input's range, fail in onnxruntime: merge-transposes, transpose-to-reshape and merge-concats
must skip them (they raised IndexError / ZeroDivisionError, or turned the invalid Transpose
into a Reshape that runs). merge-slices, like the other layout passes, adds no initializer to a
graph that stays at IR < 4 (every initializer must be a graph input there). transpose-to-reshape
leaves a Transpose of int4/uint4/int2 tensors alone: onnxruntime has no Reshape kernel for them.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.ir import Graph
from graphopt.passes.base import PassContext
from graphopt.pipeline import PassManager, make_pipeline


def _transposes(p: list[int], q: list[int]) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),  # (so that y could take r's name)
        helper.make_node("Transpose", ["r"], ["t"], perm=p),
        helper.make_node("Transpose", ["t"], ["y"], perm=q),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _perms(model: onnx.ModelProto) -> list[tuple[str, list[int]]]:
    return [
        (n.op_type, [int(v) for a in n.attribute if a.name == "perm" for v in a.ints])
        for n in model.graph.node
        if n.op_type != "Relu"
    ]


@pytest.mark.parametrize("name", ["merge-transposes", "transpose-to-reshape"])
@pytest.mark.parametrize(
    ("p", "q"),
    [([1, 0], [0, 5]), ([1, 5], [1, 0]), ([1, 0], [-1, 0]), ([1, 0], [0, 0])],
    ids=["out-of-range", "out-of-range-inner", "negative", "repeated"],
)
def test_a_transpose_whose_perm_is_not_a_permutation_is_left_alone(name, p, q):
    model = _transposes(p, q)
    with pytest.raises((onnx.checker.ValidationError, onnx.shape_inference.InferenceError)):
        onnx.checker.check_model(model, full_check=True)  # invalid: nothing to rewrite
    result = graphopt.optimize(model, make_pipeline("t", [name]))
    assert _perms(result) == [("Transpose", p), ("Transpose", q)]


def test_a_concat_of_scalars_on_an_axis_out_of_range_is_left_alone():
    nodes = [
        helper.make_node("Concat", ["s", "s"], ["c"], axis=0),
        helper.make_node("Concat", ["c", "s"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [])],  # rank 0
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    result = graphopt.optimize(model, make_pipeline("t", ["merge-concats"]))
    assert [(n.op_type, list(n.input)) for n in result.graph.node] == [
        ("Concat", ["s", "s"]),
        ("Concat", ["c", "s"]),
    ]


def test_merge_slices_adds_no_initializer_to_an_ir3_graph():
    model = onnx.parser.parse_model(
        """
        <ir_version: 3, opset_import: ["" : 10]>
        g (float[2, 6, 8] x) => (float[2, 3, 3] y) {
          s = Constant <value = int64[1] {0}> ()
          e = Constant <value = int64[1] {3}> ()
          a = Constant <value = int64[1] {1}> ()
          b = Constant <value = int64[1] {2}> ()
          m = Slice(x, s, e, a)
          y = Slice(m, s, e, b)
        }
        """
    )
    onnx.checker.check_model(model, full_check=True)
    graph = Graph(onnx.ModelProto.FromString(model.SerializeToString()))
    ctx = PassContext(record_explanations=True)
    PassManager(make_pipeline("t", ["merge-slices"])).run(graph, ctx)
    out = graph.commit()
    onnx.checker.check_model(out, full_check=True)
    assert [n.op_type for n in out.graph.node if n.op_type != "Constant"] == ["Slice", "Slice"]
    assert any(r[0] == "merge-slices" and "IR < 4" in r[3] for r in ctx.explain)
    # `optimize` raises the IR first, and then the slices merge
    result = graphopt.optimize(model, make_pipeline("t", ["merge-slices"]))
    onnx.checker.check_model(result, full_check=True)
    assert [n.op_type for n in result.graph.node if n.op_type != "Constant"] == ["Slice"]


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


@pytest.mark.parametrize("pipeline", ["transpose-to-reshape", "default"])
@pytest.mark.parametrize(
    ("elem_type", "opset"),
    [(TensorProto.INT4, 21), (TensorProto.UINT4, 21), (TensorProto.INT2, 25)],
    ids=["int4", "uint4", "int2"],
)
def test_a_transpose_of_packed_integers_stays_a_transpose(elem_type, opset, pipeline):
    # onnxruntime transposes int4/uint4/int2 tensors but has no Reshape kernel for them: the
    # Transpose that only moves a size-1 dim, rewritten, made a model that cannot load
    nodes = [
        helper.make_node("Cast", ["x"], ["q"], to=elem_type),
        helper.make_node("Transpose", ["q"], ["t"], perm=[1, 0, 2]),
        helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=11)
    try:
        original = _session(model)
    except Exception as error:  # (an onnxruntime without these types)
        pytest.skip(f"onnxruntime does not run the original: {error}")
    x = np.array([[[0, 1, -1, 1], [1, 0, 1, 0], [-1, 1, 0, 1]]], np.float32)
    if elem_type == TensorProto.UINT4:
        x = np.abs(x)
    name = pipeline if pipeline == "default" else make_pipeline("t", [pipeline])
    result = graphopt.optimize(model, name)
    onnx.checker.check_model(result, full_check=True)
    assert "Reshape" not in [n.op_type for n in result.graph.node]
    want = original.run(None, {"x": x})[0]
    np.testing.assert_array_equal(_session(result).run(None, {"x": x})[0], want)
