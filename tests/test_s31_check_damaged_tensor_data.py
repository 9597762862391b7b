"""`graphopt check` on a model storing a tensor whose data does not make its shape and element
type (raw data of another size, a typed field of another count, a STRING tensor in
raw_data): onnxruntime refuses it ("raw_data size (12 bytes) does not match expected size",
"data field count (3) does not match"), and check said "0 errors" unless one of its rules
happened to read the tensor (a Q/DQ scale, a Squeeze's axes: then a one-line error worded
by numpy, "tensor 'sc' cannot be read: tensor 'sc' ... cannot be read: cannot reshape array
of size 0"). Every stored tensor is now compared by length before the rules run: one
line naming it, exit 2, whatever reads it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.trt_check import check_tensorrt
from graphopt.cli import main
from graphopt.errors import LoadError

_X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
_Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])


def _raw(name: str, elem: int, dims: list[int], size: int) -> onnx.TensorProto:
    t = onnx.TensorProto(name=name, data_type=elem, dims=dims)
    t.raw_data = b"\0" * size
    return t


def _model(nodes, initializer=(), inputs=(_X,), outputs=(_Y,)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", list(inputs), list(outputs), list(initializer))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _added(weight: onnx.TensorProto) -> onnx.ModelProto:
    return _model([helper.make_node("Add", ["x", "w"], ["y"])], [weight])


def _unused(weight: onnx.TensorProto) -> onnx.ModelProto:
    return _model([helper.make_node("Relu", ["x"], ["y"])], [weight])


def _reshaped(shape: onnx.TensorProto) -> onnx.ModelProto:
    return _model([helper.make_node("Reshape", ["x", "w"], ["y"])], [shape])


def _constant(value: onnx.TensorProto) -> onnx.ModelProto:
    const = helper.make_node("Constant", [], ["c"], name="k", value=value)
    return _model([const, helper.make_node("Add", ["x", "c"], ["y"])])


def _qdq(scale: onnx.TensorProto) -> onnx.ModelProto:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "w", "zp"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "w", "zp"], ["y"]),
    ]
    return _model(nodes, [scale, numpy_helper.from_array(np.int8(0), "zp")])


def _in_branch(weight: onnx.TensorProto) -> onnx.ModelProto:
    def branch(name: str, init: list[onnx.TensorProto]) -> onnx.GraphProto:
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [2])
        add = helper.make_node("Add", ["x", "w" if init else "x"], [f"{name}_y"])
        return helper.make_graph([add], name, [], [out], init)

    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    node = helper.make_node(
        "If", ["cond"], ["y"], name="if", then_branch=branch("then", [weight]),
        else_branch=branch("else", []),
    )  # fmt: skip
    return _model([node], inputs=[_X, cond])


def _float_data(count: int) -> onnx.TensorProto:
    t = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2])
    t.float_data.extend([1.0] * count)
    return t


SHORT = "tensor 'w' (float 2) needs 8 bytes of raw data, but holds 4 (a damaged model)"
CASES = {
    "read-short": (_added(_raw("w", 1, [2], 4)), SHORT),
    "read-long": (
        _added(_raw("w", 1, [2], 12)),
        "tensor 'w' (float 2) needs 8 bytes of raw data, but holds 12",
    ),
    "unused": (_unused(_raw("w", 1, [2], 4)), SHORT),
    "float_data": (
        _added(_float_data(3)),
        "tensor 'w' (float 2) needs 2 values in float_data, but holds 3",
    ),
    "no-data": (_added(_float_data(0)), "needs 2 values in float_data, but holds 0"),
    "reshape-shape": (
        _reshaped(_raw("w", TensorProto.INT64, [2], 8)),
        "tensor 'w' (int64 2) needs 16 bytes of raw data, but holds 8",
    ),
    "constant": (
        _constant(_raw("v", 1, [2], 4)),
        "Constant node 'k' writing 'c': the tensor its attribute 'value' holds (float 2) "
        "needs 8 bytes of raw data, but holds 4",
    ),
    "qdq-scale": (_qdq(_raw("w", 1, [], 0)), "tensor 'w' (float scalar) needs 4 bytes"),
    "if-branch": (
        _in_branch(_raw("w", 1, [2], 4)),
        "in a body of If 'if': tensor 'w' (float 2) needs 8",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_refuses_it_in_one_line(tmp_path, capsys, case) -> None:
    model, said = CASES[case]
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert f"graphopt check: error: {path}: " in captured.err
    assert said in captured.err
    assert captured.err.count("cannot be read") == 0


def test_check_tensorrt_raises_it() -> None:
    with pytest.raises(LoadError, match=r"needs 8 bytes of raw data, but holds 4"):
        check_tensorrt(CASES["unused"][0])


@pytest.mark.parametrize(
    "model",
    [
        _added(numpy_helper.from_array(np.float32([1, 2]), "w")),
        _added(_float_data(2)),
        _constant(numpy_helper.from_array(np.float32([1, 2]), "v")),
        _in_branch(numpy_helper.from_array(np.float32([1, 2]), "w")),
        _unused(helper.make_tensor("w", TensorProto.STRING, [2], [b"a", b"b"])),
    ],
    ids=["raw", "float_data", "constant", "if-branch", "strings"],
)
def test_whole_tensors_pass(model) -> None:
    """Controls (pass on the parent too)."""
    assert [f for f in check_tensorrt(model) if f.severity == "error"] == []


def test_external_data_is_not_judged_here(tmp_path, capsys) -> None:
    """A tensor in external data is read and its size checked by the load; then it is whole."""
    model = _added(numpy_helper.from_array(np.float32([1, 2]), "w"))
    path = tmp_path / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, location="w.bin", size_threshold=0)
    assert main(["check", str(path)]) == 0
    assert "0 errors" in capsys.readouterr().out
