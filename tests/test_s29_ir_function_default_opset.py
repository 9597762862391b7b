"""A model-local function that holds a default-domain op but imports no default opset:
onnxruntime ("No opset registered for domain") and onnx.checker refuse the model, and
`graphopt optimize` wrote it out. Load refuses it in one line now."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.errors import LoadError
from tests.child_process import run_python


def _model(function_opsets: list[onnx.OperatorSetIdProto], op: str = "Relu") -> onnx.ModelProto:
    domain = "" if op == "Relu" else "other"
    body = [helper.make_node(op, ["x"], ["y"], domain=domain, name="inner")]
    function = helper.make_function("d", "f", ["x"], ["y"], body, opset_imports=function_opsets)
    graph = helper.make_graph(
        [helper.make_node("f", ["x"], ["y"], domain="d", name="call")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    imports = [helper.make_opsetid("", 13), helper.make_opsetid("d", 1)]
    if op != "Relu":
        imports.append(helper.make_opsetid("other", 1))
    return helper.make_model(graph, opset_imports=imports, functions=[function])


def test_a_function_using_default_ops_without_importing_them_is_refused() -> None:
    with pytest.raises(LoadError) as caught:
        graphopt.optimize(_model([]))
    assert str(caught.value) == (
        "the given ModelProto: function 'f' (domain 'd') uses the default-domain op Relu but "
        "imports no default opset (onnxruntime refuses the model)"
    )


def test_the_cli_says_it_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_model([]), path)
    done = run_python("-m", "graphopt", "optimize", str(path), "-o", str(out))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"graphopt optimize: error: {path}: function 'f' (domain 'd') uses the default-domain "
        "op Relu but imports no default opset (onnxruntime refuses the model)"
    ]
    assert not out.exists()


@pytest.mark.parametrize("version", [11, 13, 18])
def test_a_function_importing_a_default_opset_loads(version: int) -> None:
    # (another version than the model's: onnx.checker refuses it, onnxruntime runs it)
    result = graphopt.optimize(_model([helper.make_opsetid("", version)]))
    assert [f.name for f in result.functions] in (["f"], [])


def test_a_function_of_other_domains_ops_only_needs_no_default_opset() -> None:
    graphopt.ir.load(_model([helper.make_opsetid("other", 1)], op="Custom"))
