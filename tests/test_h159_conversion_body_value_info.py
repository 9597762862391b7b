"""`convert_opset` gave an If body back its metadata but not all of its value_info: onnx's
version_converter keeps a body's entries for its own tensors but drops those for tensors it
reads from the outer scope, so their declared types were lost."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir.opset_conversion import convert_opset


def _branch(name: str, op: str) -> onnx.GraphProto:
    body = helper.make_graph(
        [
            helper.make_node(op, ["x"], [f"{name}_mid"], name=f"{name}_op"),
            helper.make_node("Identity", [f"{name}_mid"], [f"{name}_out"], name=f"{name}_id"),
        ],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2])],
    )
    body.value_info.append(helper.make_tensor_value_info(f"{name}_mid", TensorProto.FLOAT, [2]))
    body.value_info.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]))  # outer
    return body


def test_body_value_info_survives_conversion() -> None:
    then_branch, else_branch = _branch("then", "Relu"), _branch("else", "Neg")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["cond"], name="greater"),
            helper.make_node(
                "If", ["cond"], ["y"], name="if", then_branch=then_branch, else_branch=else_branch
            ),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[numpy_helper.from_array(np.array(0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    converted = convert_opset(model, 18)
    assert converted.opset_import[0].version == 18
    node = next(n for n in converted.graph.node if n.op_type == "If")
    bodies = {a.name: a.g for a in node.attribute}
    for key, body in (("then_branch", then_branch), ("else_branch", else_branch)):
        got = sorted(vi.SerializeToString() for vi in bodies[key].value_info)
        assert got == sorted(vi.SerializeToString() for vi in body.value_info)
    onnx.checker.check_model(converted, full_check=True)
