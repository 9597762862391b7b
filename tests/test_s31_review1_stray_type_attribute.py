"""`undefined_type_attributes` passes a node by its op type where ONNX defines the op without
a to/dtype/output_dtype attribute or a body (2dacbad). A node can still carry such an
attribute off its schema: a Relu with to=99, or a graph on a Relu holding a Cast to=99.
onnxruntime refuses either model; optimize refused both before 2dacbad and then wrote them
back, exit 0, the Relu passed by its op type. Such a node is read again. Each CLI run is a
child process (the model is one onnx and onnxruntime refuse)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.ir.model_io import undefined_type_attributes
from tests.child_process import one_line_refusal, run_cli


def _relu_model(**attributes: object) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    relu = helper.make_node("Relu", ["x"], ["y"], name="relu", **attributes)
    graph = helper.make_graph([relu], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _body(to: int) -> onnx.GraphProto:
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])
    cast = helper.make_node("Cast", ["b"], ["c"], name="inner", to=to)
    return helper.make_graph([cast], "body", [b], [c])


CASES = {
    "type attribute": (_relu_model(to=99), ("relu", "to", 99)),
    "body": (_relu_model(body=_body(99)), ("inner", "to", 99)),
    "ai.onnx domain": (_relu_model(domain="ai.onnx", dtype=77), ("relu", "dtype", 77)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_off_schema_type_attribute_or_body_is_read(case: str) -> None:
    model, want = CASES[case]
    found = [(n.name, a, e) for n, a, e in undefined_type_attributes(model.graph)]
    assert found == [want]


@pytest.mark.parametrize(
    "model",
    [_relu_model(), _relu_model(to=TensorProto.FLOAT), _relu_model(body=_body(TensorProto.FLOAT))],
    ids=["plain", "defined type", "body of defined types"],
)
def test_what_names_no_undefined_type_is_not_found(model: onnx.ModelProto) -> None:
    assert list(undefined_type_attributes(model.graph)) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_optimize_refuses_it_in_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    model, (node, attribute, elem) = CASES[case]
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, path)
    line = one_line_refusal(run_cli("optimize", str(path), "-o", str(out)))
    assert f"node '{node}'" in line, line
    assert f"attribute '{attribute}' names element type {elem}, which ONNX does not define" in line
    assert not out.exists()
