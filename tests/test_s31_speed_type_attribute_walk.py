"""`undefined_type_attributes` (what optimize refuses before writing a model back) walks the
attributes by their type, reading a name only for an INT (layout_cdla's 1493 nodes: 8.8 ->
~1.3 ms). What it finds stays what it found, in the same order: a node's bodies first."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from graphopt.ir.model_io import undefined_stored_types, undefined_type_attributes


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


def test_a_body_comes_before_its_nodes_own_attribute():
    odd = helper.make_node(
        "If",
        ["c"],
        ["y"],
        name="outer",
        to=98,
        then_branch=_body(_cast("deep", 99)),
        else_branch=_body(_cast("fine", TensorProto.FLOAT)),
    )
    graph = helper.make_graph([odd], "g", [], [])
    found = [(n.name, a, e) for n, a, e in undefined_type_attributes(graph)]
    assert found == [("deep", "to", 99), ("outer", "to", 98)]


def test_a_foreign_nodes_own_type_attribute_is_not_read():
    foreign = helper.make_node("Cast", ["x"], ["y"], name="mine", domain="custom", to=99)
    graph = helper.make_graph([foreign], "g", [], [])
    assert list(undefined_type_attributes(graph)) == []


def test_stored_types_are_found_in_the_same_walk_in_any_body():
    """`undefined_stored_types` shares the walk: a Constant of type 99 in a body carried by a
    Relu (off its schema) is found too (the walk of 166e892 followed If/Loop/Scan bodies
    only), after the graph's own initializers."""
    bad = onnx.TensorProto(name="w", data_type=99, dims=[1], raw_data=b"\0" * 4)
    const = helper.make_node("Constant", [], ["k"], name="k99", value=bad)
    relu = helper.make_node("Relu", ["x"], ["y"], name="relu", body=_body(const))
    init = onnx.TensorProto(name="i0", data_type=0, dims=[1], raw_data=b"\0" * 4)
    graph = helper.make_graph([relu], "g", [], [], initializer=[init])
    assert [what for what, _ in undefined_stored_types(graph)] == [
        "initializer 'i0'",
        "Constant node 'k99' writing 'k': the tensor its attribute 'value' holds",
    ]
