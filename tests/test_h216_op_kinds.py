"""H216: op kinds and edge patterns where an ONNX op is not what its table kind says along
every input.

A Dropout whose training_mode is a constant false is the identity (ONNX; TVM's frontend drops
it), but every Dropout given a training_mode input was OPAQUE, so Conv -> Dropout -> Relu fell
apart into three groups where TVM makes one.

An Unsqueeze or Tile whose axes or repeats are computed at run time is TVM's dyn.expand_dims or
dyn.tile, INJECTIVE; the table's BROADCAST (TVM's kind for constant ones) let such a node fuse
into a reduction after it, which TVM's phases refuse an injective op.

A Clip whose min or max is computed is, in TVM's ONNX frontend, maximum/minimum: broadcast
along the bound (a scalar against the output). The edge from the bound's writer was ELEMWISE,
so a MatMul computing the bound fused into the Clip as its "elementwise epilogue", which TVM's
phase 1 refuses (the combined pattern to the post-dominator is BROADCAST).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import fuse_ops
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.ir import Graph, load_model
from graphopt.passes.base import PassContext
from graphopt.passes.fusion_functions import MaterializeFusionGroups


def _model(nodes, inputs, outputs, inits=(), opset=18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name: str, shape: list[int], dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _clip_with_bound_from_matmul(x_shape: list[int]) -> onnx.ModelProto:
    # s = v·w (a scalar); y = Clip(x, s, 6): the MatMul computes the lower bound
    w = numpy_helper.from_array(np.linspace(-1, 1, 3, dtype=np.float32), "w")
    hi = numpy_helper.from_array(np.array(6, np.float32), "hi")
    nodes = [
        helper.make_node("MatMul", ["v", "w"], ["s"], name="matmul"),
        helper.make_node("Clip", ["x", "s", "hi"], ["y"], name="clip"),
    ]
    return _model(nodes, [_vi("v", [3]), _vi("x", x_shape)], [_vi("y", x_shape)], [w, hi])


def test_a_matmul_computing_a_clip_bound_is_no_elementwise_producer():
    assert sorted(fuse_ops(_clip_with_bound_from_matmul([2, 4]))) == [["clip"], ["matmul"]]


def test_a_clip_of_a_scalar_by_a_scalar_bound_is_elementwise_along_it():
    # the bound has the output's shape (both scalars): an elementwise edge, as TVM refines it
    assert fuse_ops(_clip_with_bound_from_matmul([])) == [["matmul", "clip"]]


def test_a_clip_of_a_conv_output_keeps_its_epilogue():
    w = numpy_helper.from_array(np.full((4, 4, 1, 1), 0.1, np.float32), "w")
    lo = numpy_helper.from_array(np.array(0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(6, np.float32), "hi")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="relu6"),
    ]
    shape = [1, 4, 5, 5]
    model = _model(nodes, [_vi("x", shape)], [_vi("y", shape)], [w, lo, hi])
    assert fuse_ops(model) == [["conv", "relu6"]]


def _conv_dropout_relu(training_mode: onnx.TensorProto | None) -> onnx.ModelProto:
    # Conv -> Dropout(ratio 0.5, training_mode) -> Relu; training_mode an initializer, or a
    # graph input (None)
    shape = [1, 4, 5, 5]
    w = numpy_helper.from_array(np.full((4, 4, 1, 1), 0.1, np.float32), "w")
    ratio = numpy_helper.from_array(np.array(0.5, np.float32), "ratio")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Dropout", ["c", "ratio", "training"], ["d"], name="dropout"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    inputs = [_vi("x", shape)]
    inits = [w, ratio]
    if training_mode is None:
        inputs.append(_vi("training", [], TensorProto.BOOL))
    else:
        inits.append(training_mode)
    return _model(nodes, inputs, [_vi("y", shape)], inits)


def test_a_dropout_whose_training_mode_is_a_constant_false_is_the_identity():
    off = numpy_helper.from_array(np.array(False), "training")
    model = _conv_dropout_relu(off)
    assert fuse_ops(model) == [["conv", "dropout", "relu"]]
    # and the materialized group computes what the model does
    graph = Graph(load_model(model))
    assert MaterializeFusionGroups().run(graph, PassContext()).changed
    out = graph.commit()
    onnx.checker.check_model(out, full_check=True)
    feed = {"x": np.linspace(-1, 1, 100, dtype=np.float32).reshape(1, 4, 5, 5)}
    want, got = ort_run(model, feed)["y"], ort_run(out, feed)["y"]
    assert want.shape == (1, 4, 5, 5) and (want > 0).any()
    np.testing.assert_array_equal(got, want)


def test_a_dropout_that_may_train_stays_opaque():
    on = numpy_helper.from_array(np.array(True), "training")
    assert fuse_ops(_conv_dropout_relu(on)) == [["conv"], ["dropout"], ["relu"]]
    assert fuse_ops(_conv_dropout_relu(None)) == [["conv"], ["dropout"], ["relu"]]


def _reduce_of(op: str, second: str, constant: bool) -> onnx.ModelProto:
    # y = ReduceSum(op(x, second)): second (axes or repeats) an initializer or a graph input
    nodes = [
        helper.make_node(op, ["x", second], ["u"], name="expand"),
        helper.make_node("ReduceSum", ["u"], ["y"], name="reduce", keepdims=0),
    ]
    value = numpy_helper.from_array(
        np.array([0] if op == "Unsqueeze" else [2, 1], np.int64), second
    )
    inputs = [_vi("x", [3, 4])]
    if not constant:
        inputs.append(_vi(second, [1 if op == "Unsqueeze" else 2], TensorProto.INT64))
    return _model(nodes, inputs, [_vi("y", [])], [value] if constant else [])


def test_unsqueeze_and_tile_computed_at_run_time_do_not_fuse_into_a_reduction():
    for op, second in (("Unsqueeze", "axes"), ("Tile", "repeats")):
        assert sorted(fuse_ops(_reduce_of(op, second, constant=False))) == [["expand"], ["reduce"]]
        assert fuse_ops(_reduce_of(op, second, constant=True)) == [["expand", "reduce"]], op
