"""An If/Loop/Scan body giving an initializer name twice, or declaring an input twice (review
H209, session 22).

`load` refused both in the main graph (`check_model_basics`) but not in a body: onnx.checker
("initializer name is not unique", "SSA form") and onnxruntime refuse such a body, yet the
default pipeline folded `Neg(K)` with one of the two K (which one the model means is not
settled) into a model both take, and `opt_level=-1` wrote the model as it was.
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
from graphopt.ir import load
from tests.test_cli_review3 import one_line_error

FLOAT = onnx.TensorProto.FLOAT


def _model(initializers: list[onnx.TensorProto], inputs: tuple[str, ...] = ()) -> onnx.ModelProto:
    """out = If(c, then: x + Neg(K), else: Neg(x)); the then body's initializers and inputs
    as given."""
    then = helper.make_graph(
        [
            helper.make_node("Neg", ["K"], ["nk"], name="neg_k"),
            helper.make_node("Add", ["x", "nk"], ["t_out"], name="add"),
        ],
        "then",
        [helper.make_tensor_value_info(name, FLOAT, [4]) for name in inputs],
        [helper.make_tensor_value_info("t_out", FLOAT, [4])],
        initializer=initializers,
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e_out"], name="neg_x")],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", FLOAT, [4])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["out"], then_branch=then, else_branch=other, name="if")],
        "g",
        [
            helper.make_tensor_value_info("x", FLOAT, [4]),
            helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("out", FLOAT, [4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _k(value: float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.full(4, value, np.float32), "K")


def test_an_initializer_given_twice_in_a_body_is_refused() -> None:
    model = _model([_k(1.0), _k(2.0)])
    with pytest.raises(onnx.checker.ValidationError, match="initializer name is not unique"):
        onnx.checker.check_model(model, full_check=True)
    with pytest.raises(LoadError, match=r"body 'then': initializer 'K' is given twice"):
        graphopt.optimize(model)


def test_an_input_declared_twice_in_a_body_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model([_k(1.0)], ("z", "z")), str(path))
    with pytest.raises(LoadError, match=r"body 'then': body input 'z' is declared twice"):
        load(path)
    assert main(["optimize", str(path), "-o", str(tmp_path / "out.onnx")]) == 2
    one_line_error(capsys, "body input 'z' is declared twice")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_one_name_in_the_body_and_the_main_graph_is_no_twin() -> None:
    """A body's initializer may take a name the main graph has (it shadows it there)."""
    model = _model([_k(1.0)])
    model.graph.initializer.append(_k(5.0))
    model.graph.node.insert(0, helper.make_node("Identity", ["K"], ["k_out"], name="id"))
    model.graph.output.append(helper.make_tensor_value_info("k_out", FLOAT, [4]))
    onnx.checker.check_model(model, full_check=True)
    assert load(model).model.graph.node[1].op_type == "If"
