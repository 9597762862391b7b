"""Opsets 26+: BitCast reads a float's bits as an integer, so a NaN's sign and payload are values
a model can output. onnxruntime's arithmetic changes them (1.32.0: a float16 NaN becomes its
default NaN 0x7e00 / 0xfe00 in Neg, Mul, Add, Sum, Mean, Dropout, ...; a signalling float32
NaN 0x7f800001 becomes the quiet 0x7fc00001 in x·1, x + (−0.0), Mean(x)), numpy's kernels
keep them. Before the fix constant folding gave numpy's bits (Neg of a float16 NaN constant
read through BitCast: 0xfc01 where onnxruntime gives 0xfe00), and eliminate-noops bypassed
x·1, x/1, x + (−0.0), x − 0.0, Sum(x), Mean(x) and Dropout(x), handing the BitCast the
input's bits where onnxruntime hands it its own.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from tests.conftest import onnxruntime_loads_opset

pytestmark = pytest.mark.skipif(
    onnx.defs.onnx_opset_version() < 28 or not onnxruntime_loads_opset(28),
    reason="needs onnx and onnxruntime at opset 28 (BitCast is opset 26)",
)

NAN16 = [0x7C01, 0x7D23, -0x3FF, 0x3C00]  # float16 NaNs with payloads, and 1.0
NAN32 = [0x7F800001, 0x7F812345, -0x7FFFFF, 0x3F800000]  # signalling float32 NaNs, and 1.0


def _assert_same_bits(original: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    want = ort_run(original, feeds, level="disable")
    for pipeline in ("default", "ort-cpu", "tensorrt"):
        optimized = graphopt.optimize(original, pipeline)
        onnx.checker.check_model(optimized, full_check=True)
        got = ort_run(optimized, feeds, level="disable")
        for name, value in want.items():
            assert got[name].dtype == value.dtype, (pipeline, name)
            np.testing.assert_array_equal(got[name], value, err_msg=f"{pipeline}: {name}")


@pytest.mark.parametrize("op", ["Neg", "Abs", "Floor", "Ceil"])
def test_folded_float16_nan_is_onnxruntimes_bits(op: str) -> None:
    c = numpy_helper.from_array(np.array(NAN16, np.int16).view(np.float16), "c")
    graph = helper.make_graph(
        [
            helper.make_node(op, ["c"], ["f"]),
            helper.make_node("BitCast", ["f"], ["b"], to=TensorProto.INT16),
            helper.make_node("Add", ["b", "x"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT16, [4])],
        [helper.make_tensor_value_info("y", TensorProto.INT16, [4])],
        [c],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28)], ir_version=11)
    _assert_same_bits(model, {"x": np.zeros(4, np.int16)})


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_folded_binary_op_of_nan_is_onnxruntimes_bits(dtype: str) -> None:
    ints = np.array(
        NAN16 if dtype == "float16" else NAN32, "int16" if dtype == "float16" else "int32"
    )
    to = TensorProto.INT16 if dtype == "float16" else TensorProto.INT32
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["c", "one"], ["f"]),
            helper.make_node("BitCast", ["f"], ["b"], to=to),
            helper.make_node("Add", ["b", "x"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", to, [4])],
        [helper.make_tensor_value_info("y", to, [4])],
        [
            numpy_helper.from_array(ints.view(dtype), "c"),
            numpy_helper.from_array(np.ones(4, dtype), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28)], ir_version=11)
    _assert_same_bits(model, {"x": np.zeros(4, ints.dtype)})


_NOOPS = {
    "mul-one": ("Mul", 1.0),
    "div-one": ("Div", 1.0),
    "add-negative-zero": ("Add", -0.0),
    "sub-zero": ("Sub", 0.0),
    "sum": ("Sum", None),
    "mean": ("Mean", None),
    "dropout": ("Dropout", None),
}


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("case", sorted(_NOOPS))
def test_noop_of_a_bitcast_nan_keeps_onnxruntimes_bits(case: str, dtype: str) -> None:
    op, constant = _NOOPS[case]
    int_type = TensorProto.INT16 if dtype == "float16" else TensorProto.INT32
    float_type = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    inputs = ["f"] if constant is None else ["f", "k"]
    inits = (
        [] if constant is None else [numpy_helper.from_array(np.full([1], constant, dtype), "k")]
    )
    graph = helper.make_graph(
        [
            helper.make_node("BitCast", ["x"], ["f"], to=float_type),
            helper.make_node(op, inputs, ["g"]),
            helper.make_node("BitCast", ["g"], ["y"], to=int_type),
        ],
        "g",
        [helper.make_tensor_value_info("x", int_type, [4])],
        [helper.make_tensor_value_info("y", int_type, [4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28)], ir_version=11)
    x = np.array(NAN16 if dtype == "float16" else NAN32, "int16" if dtype == "float16" else "int32")
    _assert_same_bits(model, {"x": x})


def test_noops_without_a_bitcast_are_still_removed_at_opset_28() -> None:
    model = onnx.parser.parse_model(
        """<ir_version: 11, opset_import: ["" : 28]>
        g (float[4] x) => (float[4] y) {
            one = Constant <value = float[1] {1.0}> ()
            m = Mul(x, one)
            y = Relu(m)
        }"""
    )
    optimized = graphopt.optimize(model)
    assert [n.op_type for n in optimized.graph.node] == ["Relu"]


def test_a_bitcast_in_an_if_branch_also_keeps_x_times_one() -> None:
    branch = helper.make_graph(
        [helper.make_node("BitCast", ["g"], ["b"], to=TensorProto.INT32)],
        "then",
        [],
        [helper.make_tensor_value_info("b", TensorProto.INT32, [4])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("BitCast", ["x"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["f", "one"], ["g"]),
            helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.INT32, [4]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [4])],
        [numpy_helper.from_array(np.ones(1, np.float32), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28)], ir_version=11)
    _assert_same_bits(model, {"x": np.array(NAN32, np.int32), "c": np.array(True)})
