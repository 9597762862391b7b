"""A tensor stored in the model with a negative dim is refused at load (H237).

498761c refused an external-data tensor with a negative dim. One stored inline (raw_data or
float_data, an initializer or a Constant's value) loaded, and where no pass read it (a MatMul
weight, a custom op's input) optimize wrote it, exit 0: a model onnx.checker ('Negative
dimension value') and onnxruntime ('Out of bounds dimensions') refuse. A pass that did read one
said 'tensor 'w' (float -2x-3) cannot be read: ...' without the model's path. Now load says
'<path>: tensor 'w' (float -2x3) has a negative dim, which no tensor has (onnx.checker and
onnxruntime refuse the model)', the words of the external-data case, reading `dims` only.
training_info's tensors are left as they are: neither onnx.checker nor onnxruntime checks them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir import load

REFUSED = "has a negative dim, which no tensor has (onnx.checker and onnxruntime refuse the model)"


def _tensor(name: str, dims: list[int], raw: bool = True) -> onnx.TensorProto:
    t = onnx.TensorProto(name=name, data_type=onnx.TensorProto.FLOAT, dims=dims)
    if raw:
        t.raw_data = np.ones(6, np.float32).tobytes()
    else:
        t.float_data.extend([1.0] * 6)
    return t


def _model(nodes: list[onnx.NodeProto], **graph: object) -> onnx.ModelProto:
    g = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        **graph,  # type: ignore[arg-type]
    )
    opsets = [oh.make_opsetid("", 13), oh.make_opsetid("my", 1)]
    return oh.make_model(g, opset_imports=opsets, ir_version=8)


def _matmul_weight() -> onnx.ModelProto:
    """No pass reads w: the parent wrote the model, exit 0."""
    return _model(
        [oh.make_node("MatMul", ["x", "w"], ["y"], name="mm")], initializer=[_tensor("w", [-3, -2])]
    )


def _custom_op_input() -> onnx.ModelProto:
    node = oh.make_node("Foo", ["x", "w"], ["y"], name="f", domain="my")
    return _model([node], initializer=[_tensor("w", [-2, 3], raw=False)])


def _constant() -> onnx.ModelProto:
    nodes = [
        oh.make_node("Constant", [], ["w"], name="k", value=_tensor("", [-2, -3])),
        oh.make_node("Add", ["x", "w"], ["y"], name="add"),
    ]
    return _model(nodes)


def _sparse() -> onnx.ModelProto:
    values = onnx.TensorProto(name="s", data_type=onnx.TensorProto.FLOAT, dims=[2])
    values.float_data.extend([1.0, 2.0])
    indices = onnx.TensorProto(name="s_i", data_type=onnx.TensorProto.INT64, dims=[2])
    indices.int64_data.extend([0, 4])
    sparse = onnx.SparseTensorProto(values=values, indices=indices, dims=[-2, 3])
    return _model(
        [oh.make_node("MatMul", ["x", "s"], ["y"], name="mm")], sparse_initializer=[sparse]
    )


def _if_body() -> onnx.ModelProto:
    branch = oh.make_graph(
        [oh.make_node("Identity", ["w"], ["o"], name="i")],
        "then",
        [],
        [oh.make_tensor_value_info("o", onnx.TensorProto.FLOAT, None)],
        [_tensor("w", [-2, -3])],
    )
    other = oh.make_graph(
        [oh.make_node("Identity", ["x"], ["o2"], name="i2")],
        "else",
        [],
        [oh.make_tensor_value_info("o2", onnx.TensorProto.FLOAT, None)],
    )
    cond = oh.make_tensor("c", onnx.TensorProto.BOOL, [], [True])
    nodes = [
        oh.make_node("Constant", [], ["cond"], name="kc", value=cond),
        oh.make_node("If", ["cond"], ["t"], name="if", then_branch=branch, else_branch=other),
        oh.make_node("Add", ["x", "t"], ["y"], name="add"),
    ]
    return _model(nodes)


CASES = {
    "matmul-weight": (_matmul_weight, "tensor 'w' (float -3x-2)"),
    "custom-op-input": (_custom_op_input, "tensor 'w' (float -2x3)"),
    "constant": (_constant, "node 'k' (Constant): the tensor of attribute 'value' (float -2x-3)"),
    "sparse": (_sparse, "sparse tensor 's' (float -2x3)"),
    "if-body": (_if_body, "tensor 'w' (float -2x-3)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_negative_dim_is_refused_at_load(tmp_path: Path, case: str) -> None:
    make, said = CASES[case]
    path = tmp_path / "m.onnx"
    path.write_bytes(make().SerializeToString())
    with pytest.raises(LoadError) as info:
        load(path)
    assert str(info.value) == f"{path}: {said} {REFUSED}"
    with pytest.raises(LoadError) as info:
        graphopt.optimize(make())
    assert str(info.value) == f"the given ModelProto: {said} {REFUSED}"


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
@pytest.mark.parametrize("case", ["matmul-weight", "custom-op-input", "constant"])
def test_optimize_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, pipeline: str
) -> None:
    make, said = CASES[case]
    path = tmp_path / "m.onnx"
    path.write_bytes(make().SerializeToString())
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(path), "-o", str(out), "--pipeline", pipeline]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"error: {path}: {said} {REFUSED}") and "\n" not in err, err
    assert not out.exists()


def test_training_info_tensors_are_left_alone(tmp_path: Path) -> None:
    """The control: onnx.checker and onnxruntime take a negative dim in training_info."""
    model = _model([oh.make_node("Relu", ["x"], ["y"], name="r")])
    algorithm = oh.make_graph(
        [oh.make_node("Identity", ["w"], ["u"], name="i")],
        "algorithm",
        [],
        [oh.make_tensor_value_info("u", onnx.TensorProto.FLOAT, [2, 3])],
        [_tensor("w", [-2, -3])],
    )
    model.training_info.add().algorithm.CopyFrom(algorithm)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    assert load(path).model.training_info[0].algorithm.initializer[0].dims == [-2, -3]


def test_plain_dims_load(tmp_path: Path) -> None:
    """The control: the same models with their dims positive load."""
    model = _matmul_weight()
    model.graph.initializer[0].dims[:] = [3, 2]
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    assert list(load(path).model.graph.initializer[0].dims) == [3, 2]
