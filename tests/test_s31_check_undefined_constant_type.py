"""`graphopt check` on a model holding a stored tensor of an element type ONNX does not
define (99) or of UNDEFINED (0): an initializer (read by a node or not, dense or sparse, in
the main graph or an If branch) or a Constant's / ConstantOfShape's value. onnxruntime
("Tensor 'w' does not have valid data type") and onnx.checker refuse such a model, and check
said "0 errors": session 30 looked at graph inputs, outputs, value_info and the type a Cast's
`to` names, not at the tensors the model stores. Each is now an onnx-invalid error."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main

_X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
_Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])


def _raw(name: str, elem: int) -> onnx.TensorProto:
    t = onnx.TensorProto(name=name, data_type=elem, dims=[2])
    t.raw_data = b"\0" * 8
    return t


def _model(nodes, inputs=(_X,), initializer=(), sparse=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", list(inputs), [_Y], list(initializer), sparse_initializer=list(sparse)
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _unused_initializer(elem: int) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Identity", ["w"], ["wi"]),
        helper.make_node("Add", ["x", "x"], ["y"]),
    ]
    return _model(nodes, initializer=[_raw("w", elem)])


def _read_initializer(elem: int) -> onnx.ModelProto:
    return _model([helper.make_node("Add", ["x", "w"], ["y"])], initializer=[_raw("w", elem)])


def _sparse_initializer(elem: int) -> onnx.ModelProto:
    values = onnx.TensorProto(name="w", data_type=elem, dims=[1])
    values.raw_data = b"\0" * 4
    indices = helper.make_tensor("wi", TensorProto.INT64, [1], [0])
    sparse = helper.make_sparse_tensor(values, indices, [2])
    return _model([helper.make_node("Add", ["x", "w"], ["y"])], sparse=[sparse])


def _constant(elem: int) -> onnx.ModelProto:
    const = helper.make_node("Constant", [], ["c"], name="const", value=_raw("v", elem))
    return _model([const, helper.make_node("Add", ["x", "c"], ["y"])])


def _constant_of_shape(elem: int) -> onnx.ModelProto:
    value = onnx.TensorProto(name="v", data_type=elem, dims=[1])
    value.raw_data = b"\0" * 4
    fill = helper.make_node("ConstantOfShape", ["s"], ["c"], name="fill", value=value)
    shape = helper.make_tensor("s", TensorProto.INT64, [1], [2])
    return _model([fill, helper.make_node("Add", ["x", "c"], ["y"])], initializer=[shape])


def _if_branch_initializer(elem: int) -> onnx.ModelProto:
    out = helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])
    then = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["t"])], "then", [], [out], [_raw("bw", elem)]
    )
    other = helper.make_graph(
        [helper.make_node("Sub", ["x", "x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])],
    )
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    branch = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other)
    return _model([branch], inputs=[_X, cond])


CASES = [
    (_unused_initializer, "initializer 'w' has element type {elem}"),
    (_read_initializer, "initializer 'w' has element type {elem}"),
    (_sparse_initializer, "sparse initializer 'w' has element type {elem}"),
    (_constant, "node 'const' (Constant): attribute 'value' holds a tensor of element type {elem}"),
    (
        _constant_of_shape,
        "node 'fill' (ConstantOfShape): attribute 'value' holds a tensor of element type {elem}",
    ),
    (_if_branch_initializer, "If 'if' then_branch: initializer 'bw' has element type {elem}"),
]


def _check(tmp_path, capsys, model: onnx.ModelProto) -> tuple[int, str]:
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    code = main(["check", str(path)])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(("build", "said"), CASES, ids=[b.__name__.strip("_") for b, _ in CASES])
@pytest.mark.parametrize("elem", [99, 0], ids=["type-99", "undefined"])
def test_check_reports_it(tmp_path, capsys, build, said, elem) -> None:
    code, out = _check(tmp_path, capsys, build(elem))
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("error: [onnx-invalid]")]
    assert len(errors) == 1, out
    assert said.format(elem=elem) in errors[0]
    what = "which ONNX does not define" if elem else "(UNDEFINED), which a stored tensor may not"
    assert what in errors[0]
    assert out.splitlines()[-1].endswith(": 1 error, 0 warnings")


@pytest.mark.parametrize(("build", "said"), CASES, ids=[b.__name__.strip("_") for b, _ in CASES])
def test_a_defined_type_passes(tmp_path, capsys, build, said) -> None:
    """Control (passes on the parent too): the same models of FLOAT."""
    _, out = _check(tmp_path, capsys, build(TensorProto.FLOAT))
    assert "onnx-invalid" not in out
    assert "0 errors" in out.splitlines()[-1]


def test_a_borrowed_outer_initializer_is_reported_once(tmp_path, capsys) -> None:
    """An If branch reading the main graph's initializer of type 99: its body is checked with
    that initializer lent to it, and the finding is the main graph's alone."""
    out_t = helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])
    then = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"])], "then", [], [out_t])
    other = helper.make_graph(
        [helper.make_node("Sub", ["x", "x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])],
    )
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    branch = helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)
    model = _model([branch], inputs=[_X, cond], initializer=[_raw("w", 99)])
    code, out = _check(tmp_path, capsys, model)
    assert code == 1
    errors = [line for line in out.splitlines() if "[onnx-invalid]" in line]
    assert errors == [
        "error: [onnx-invalid] initializer 'w' has element type 99, which ONNX does not define "
        "(onnxruntime refuses it): the model is not valid ONNX; store it as one of "
        "onnx.TensorProto.DataType, or drop it"
    ]
