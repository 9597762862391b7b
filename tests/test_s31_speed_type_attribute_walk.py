"""`undefined_type_attributes` (what optimize refuses before writing a model back) reads the
attributes of a node only where its op can name an element type or hold a body: an op ONNX
defines without either (Constant, Conv: layout_cdla's 1493 nodes) is passed by its op type.
What it finds stays what it found."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from graphopt.ir.model_io import _untyped_op, undefined_type_attributes


def test_ops_without_type_attributes_or_bodies_are_skipped():
    for op in ("Constant", "Conv", "Relu", "Add", "BatchNormalization"):
        assert _untyped_op(op), op
    typed = ("Cast", "EyeLike", "RandomNormal", "QuantizeLinear", "DequantizeLinear", "Bernoulli")
    bodies = ("If", "Loop", "Scan", "SequenceMap")
    for op in (*typed, *bodies, "NotAnOnnxOp"):
        assert not _untyped_op(op), op


def _cast(name: str, to: int) -> onnx.NodeProto:
    return helper.make_node("Cast", ["x"], [f"{name}_out"], name=name, to=to)


def _body(*nodes: onnx.NodeProto) -> onnx.GraphProto:
    out = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    return helper.make_graph(list(nodes), "body", [], [out])


def test_nested_and_foreign_bodies_are_still_read():
    inner_if = helper.make_node(
        "If",
        ["c"],
        ["y"],
        name="inner",
        then_branch=_body(_cast("deep", 99)),
        else_branch=_body(_cast("fine", TensorProto.FLOAT)),
    )
    foreign = helper.make_node(
        "Wrap", ["x"], ["z"], name="foreign", domain="custom", body=_body(_cast("inside", 77))
    )
    dq = helper.make_node("DequantizeLinear", ["q", "s"], ["d"], name="dq", output_dtype=55)
    relu = helper.make_node("Relu", ["x"], ["r"], name="relu")
    graph = helper.make_graph([relu, inner_if, foreign, dq, _cast("top", 123)], "g", [], [])
    found = [(n.name, attr, elem) for n, attr, elem in undefined_type_attributes(graph)]
    assert found == [
        ("deep", "to", 99),
        ("inside", "to", 77),
        ("dq", "output_dtype", 55),
        ("top", "to", 123),
    ]


def test_an_op_onnx_does_not_define_is_still_read():
    odd = helper.make_node("NotAnOnnxOp", ["x"], ["y"], name="odd", to=99)
    graph = helper.make_graph([odd], "g", [], [])
    assert [(n.name, a, e) for n, a, e in undefined_type_attributes(graph)] == [("odd", "to", 99)]
