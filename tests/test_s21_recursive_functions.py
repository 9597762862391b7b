"""Model-local functions that call each other in a cycle are refused at load, in one line
(H207 found optimize wrote such a model out; onnx's checker says 'Model-local functions must
not be recursive' and onnxruntime does not load it). Functions that call each other without
a cycle still load."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.helper as oh
import pytest

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError

OPSETS = [oh.make_opsetid("", 17), oh.make_opsetid("local", 1)]


def _function(name: str, calls: str | None, in_body: bool = False) -> onnx.FunctionProto:
    op = oh.make_node(calls, ["a"], ["b"], domain="local") if calls else None
    if op is None:
        nodes = [oh.make_node("Relu", ["a"], ["b"])]
    elif in_body:  # the call in an If's branches inside the function
        branch = oh.make_graph(
            [oh.make_node(calls, ["a"], ["t"], domain="local")],
            "branch",
            [],
            [oh.make_tensor_value_info("t", onnx.TensorProto.FLOAT, [2])],
        )
        nodes = [
            oh.make_node("Constant", [], ["c"], value_ints=[1]),
            oh.make_node("Cast", ["c"], ["cb"], to=onnx.TensorProto.BOOL),
            oh.make_node("Squeeze", ["cb"], ["cond"]),
            oh.make_node("If", ["cond"], ["b"], then_branch=branch, else_branch=branch),
        ]
    else:
        nodes = [op]
    return oh.make_function("local", name, ["a"], ["b"], nodes, OPSETS)


def _model(functions: list[onnx.FunctionProto]) -> onnx.ModelProto:
    x = oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    graph = oh.make_graph([oh.make_node("F", ["x"], ["y"], domain="local")], "g", [x], [y])
    return oh.make_model(graph, opset_imports=OPSETS, functions=functions, ir_version=10)


@pytest.mark.parametrize(
    ("functions", "cycle"),
    [
        ([_function("F", "F")], "local::F -> local::F"),
        ([_function("F", "G"), _function("G", "F")], "local::F -> local::G -> local::F"),
        (
            [_function("F", "G"), _function("G", "H"), _function("H", "G", in_body=True)],
            "local::G -> local::H -> local::G",
        ),
    ],
    ids=["self", "two", "through-an-if-body"],
)
def test_a_cycle_of_calls_is_refused_in_one_line(
    functions: list[onnx.FunctionProto], cycle: str, tmp_path: Path, capsys
) -> None:
    model = _model(functions)
    with pytest.raises(onnx.checker.ValidationError, match="must not be recursive"):
        onnx.checker.check_model(model)
    with pytest.raises(LoadError, match=f"call each other in a cycle \\({cycle}\\)"):
        graphopt.optimize(model)
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, src)
    assert main(["optimize", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ONNX functions must not be recursive" in err
    assert not out.exists()


def test_calls_without_a_cycle_still_load() -> None:
    model = _model([_function("F", "G"), _function("G", "H"), _function("H", None)])
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
