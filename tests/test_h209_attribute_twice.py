"""A node giving one attribute twice (review H209, session 22).

onnx.checker and onnxruntime refuse such a node ("Attribute 'perm' appeared multiple times"),
but `load` took it and the default pipeline folded a Transpose of a constant with perm [1, 0]
and perm [0, 1] using one of them, into a model both take: which value the model means is
not settled. It is refused at load now (in the main graph, If/Loop/Scan bodies and model-local
functions; training_info, which onnxruntime does not read, is left as it is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError
from tests.test_cli_review3 import one_line_error

FLOAT = onnx.TensorProto.FLOAT


def _transpose_twice() -> onnx.NodeProto:
    node = helper.make_node("Transpose", ["C"], ["ct"], name="tr", perm=[1, 0])
    node.attribute.extend([helper.make_attribute("perm", [0, 1])])
    return node


def _model(nodes: list[onnx.NodeProto], **kwargs) -> onnx.ModelProto:
    """out = x + (nodes writing ct from the constant C)"""
    c = numpy_helper.from_array(np.array([[1, 2], [3, 4]], np.float32), "C")
    graph = helper.make_graph(
        [*nodes, helper.make_node("Add", ["x", "ct"], ["out"], name="add")],
        "g",
        [helper.make_tensor_value_info("x", FLOAT, [2, 2])],
        [helper.make_tensor_value_info("out", FLOAT, [2, 2])],
        [c],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), *kwargs.pop("imports", [])], **kwargs
    )


def test_an_attribute_given_twice_is_refused_not_folded() -> None:
    model = _model([_transpose_twice()])
    with pytest.raises(onnx.checker.ValidationError, match="appeared multiple times"):
        onnx.checker.check_model(model, full_check=True)
    with pytest.raises(LoadError, match=r"node 'tr' \(Transpose\) gives attribute 'perm' twice"):
        graphopt.optimize(model)


def test_the_cli_says_it_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model([_transpose_twice()]), str(path))
    assert main(["optimize", str(path), "-o", str(tmp_path / "out.onnx")]) == 2
    one_line_error(capsys, "gives attribute 'perm' twice")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_in_a_body_and_in_a_function_too() -> None:
    branch = helper.make_graph(
        [_transpose_twice()], "then", [], [helper.make_tensor_value_info("ct", FLOAT, [2, 2])]
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["C"], ["ct2"], name="id")],
        "else",
        [],
        [helper.make_tensor_value_info("ct2", FLOAT, [2, 2])],
    )
    model = _model(
        [
            helper.make_node(
                "Constant", [], ["c"], name="cond", value=numpy_helper.from_array(np.array(True))
            ),
            helper.make_node("If", ["c"], ["ct"], name="if", then_branch=branch, else_branch=other),
        ]
    )
    with pytest.raises(LoadError, match="gives attribute 'perm' twice"):
        graphopt.optimize(model)
    function = helper.make_function(
        "my", "T", ["C"], ["ct"], [_transpose_twice()], [helper.make_opsetid("", 17)]
    )
    model = _model(
        [helper.make_node("T", ["C"], ["ct"], name="t", domain="my")],
        functions=[function],
        imports=[helper.make_opsetid("my", 1)],
    )
    with pytest.raises(LoadError, match="gives attribute 'perm' twice"):
        graphopt.optimize(model)


def test_attributes_given_once_still_fold() -> None:
    model = _model([helper.make_node("Transpose", ["C"], ["ct"], name="tr", perm=[1, 0])])
    result = graphopt.optimize(model)
    assert [n.op_type for n in result.graph.node] == ["Add"]
