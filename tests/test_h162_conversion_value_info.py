"""`convert_opset` gave back more value_info than the model declared: onnx.version_converter
runs shape inference and adds an entry for every tensor it types (an opset-11 model declaring
none came back with one per intermediate tensor, in its If bodies too), and rewrites the
declared ones (an unnamed dim took the graph input's "N"). The converted model now carries
exactly the entries the model declared, as declared, for the tensors it still uses.

Also: an unnamed node's metadata_props and its bodies' value_info were not restored (nodes
were matched by name only); an unnamed node is now matched by its outputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir.opset_conversion import convert_opset
from tests.fusion_models import run_at


def _chain() -> onnx.ModelProto:
    return onnx.parser.parse_model("""
<ir_version: 7, opset_import: ["" : 11]>
g (float[N,3] x) => (float[N,3] y) {
  a = Relu(x)
  b = Sigmoid(a)
  c = Softmax<axis = 1>(b)
  y = Mul(a, c)
}
""")


def test_no_value_info_added() -> None:
    model = _chain()
    converted = convert_opset(model, 13)
    assert converted.opset_import[0].version == 13
    assert list(converted.graph.value_info) == []
    onnx.checker.check_model(converted, full_check=True)
    x = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], np.float32)
    np.testing.assert_allclose(
        run_at(converted, {"x": x}, "disable")["y"], run_at(model, {"x": x}, "disable")["y"]
    )


def test_declared_value_info_kept_as_declared() -> None:
    model = _chain()
    declared = [
        helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 3]),  # an unnamed dim
        helper.make_tensor_value_info("a", TensorProto.FLOAT, None),  # no shape
    ]
    model.graph.value_info.extend(declared)
    converted = convert_opset(model, 13)
    assert list(converted.graph.value_info) == declared
    assert list(model.graph.value_info) == declared  # the caller's model is not changed


def _branch(name: str, op: str) -> onnx.GraphProto:
    return helper.make_graph(
        [
            helper.make_node(op, ["x"], [f"{name}_mid"]),
            helper.make_node("Sigmoid", [f"{name}_mid"], [f"{name}_out"]),
        ],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)],
    )


def test_unnamed_nodes_and_their_bodies() -> None:
    reduce = helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0)
    helper.set_metadata_props(reduce, {"origin": "exporter"})
    branch = helper.make_node(
        "If", ["c"], ["y"], then_branch=_branch("then", "Relu"), else_branch=_branch("else", "Neg")
    )
    graph = helper.make_graph(
        [reduce, helper.make_node("Greater", ["s", "zero"], ["c"]), branch],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.float32(0), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)
    converted = convert_opset(model, 13)
    assert list(converted.graph.value_info) == []
    bodies = [a.g for a in converted.graph.node[-1].attribute]
    assert [list(body.value_info) for body in bodies] == [[], []]
    first = converted.graph.node[0]
    assert first.op_type == "ReduceSum"
    assert [(p.key, p.value) for p in first.metadata_props] == [("origin", "exporter")]
    onnx.checker.check_model(converted, full_check=True)
    for x in (np.array([1.0, 2.0], np.float32), np.array([-1.0, -2.0], np.float32)):
        np.testing.assert_allclose(
            run_at(converted, {"x": x}, "disable")["y"], run_at(model, {"x": x}, "disable")["y"]
        )
