"""Two model-local functions with one id (review H209, session 22).

A model defining `my::F` twice (two bodies, no overload to tell them apart) loaded, and
optimize wrote it out as it was, while onnx.checker ("multiple local functions with the same
implementation id") and onnxruntime ("Duplicate model-local function identifier") refuse it:
which body a call means is not settled. It is refused at load in one line now; one name with
two overloads (IR 10) is two functions and still loads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError
from tests.conftest import assert_same_outputs
from tests.test_cli_review3 import one_line_error


def _model(overloads: tuple[str, str], ir: int = 10) -> onnx.ModelProto:
    """out = F(x) + F'(x): F = Relu, F' = Neg, both `my::F`, with these overloads."""
    bodies = [helper.make_node("Relu", ["a"], ["b"]), helper.make_node("Neg", ["a"], ["b"])]
    functions, nodes = [], []
    for i, (body, overload) in enumerate(zip(bodies, overloads, strict=True)):
        function = helper.make_function(
            "my", "F", ["a"], ["b"], [body], [helper.make_opsetid("", 17)]
        )
        function.overload = overload
        functions.append(function)
        node = helper.make_node("F", ["x"], [f"y{i}"], domain="my", name=f"f{i}")
        node.overload = overload
        nodes.append(node)
    nodes.append(helper.make_node("Add", ["y0", "y1"], ["out"], name="add"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [4])],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my", 1)],
        ir_version=ir,
        functions=functions,
    )


def test_a_function_defined_twice_is_refused() -> None:
    model = _model(("", ""))
    with pytest.raises(onnx.checker.ValidationError, match="same implementation id"):
        onnx.checker.check_model(model, full_check=True)
    with pytest.raises(LoadError, match=r"model-local function 'my::F' is defined twice"):
        graphopt.optimize(model)


def test_the_cli_says_it_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model(("", "")), str(path))
    assert main(["optimize", str(path), "-o", str(tmp_path / "out.onnx")]) == 2
    one_line_error(capsys, "'my::F' is defined twice")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_two_overloads_of_one_name_still_load_and_run() -> None:
    model = _model(("", "neg"))
    onnx.checker.check_model(model, full_check=True)
    result = graphopt.optimize(model)
    onnx.checker.check_model(result, full_check=True)
    assert_same_outputs(model, result, {"x": np.array([-1, 2, -3, 4], np.float32)})


def test_the_id_is_shown_as_the_recursion_check_shows_it() -> None:
    """A function of the empty domain is named without '::' (the first version of this check
    said '::F'), an overload after a colon."""
    model = _model(("", ""))
    for function in model.functions:
        function.domain = ""
    with pytest.raises(LoadError, match=r"model-local function 'F' is defined twice"):
        graphopt.optimize(model)
    model = _model(("neg", "neg"))
    with pytest.raises(LoadError, match=r"model-local function 'my::F:neg' is defined twice"):
        graphopt.optimize(model)
