"""fp16_model (graphopt.backends.tensorrt), H199: float32 values that If/Loop/Scan bodies,
nested ones included, must keep.

Checked in onnxruntime against the float32 model (TensorRT is not needed), on fixed inputs
(np.linspace); every converted model passes onnx's full checker."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model


def _vec(name: str, n: int = 4, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, [n])


def _scalar(name: str, dtype: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, [])


def _constant(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32))
    )


def _half(model: onnx.ModelProto) -> onnx.ModelProto:
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    return half


def _loop_with_an_if_outputting(value: float) -> onnx.ModelProto:
    """z = 0.5 * Loop(2 times: v = If(cond, then: a constant of `value`, else: -v) + x)(x),
    x = Relu(x0): the constant is an output of a body (the If's then branch) nested in the
    Loop's body."""
    inner_then = helper.make_graph(
        [_constant("cb", np.full([4], value))], "inner_then", [], [_vec("cb")]
    )
    inner_else = helper.make_graph(
        [helper.make_node("Neg", ["v_in"], ["ie"], name="neg")], "inner_else", [], [_vec("ie")]
    )
    body = helper.make_graph(
        [
            helper.make_node(
                "If", ["cond"], ["t"], name="inner", then_branch=inner_then, else_branch=inner_else
            ),
            helper.make_node("Add", ["t", "x"], ["v_out"], name="add"),
            helper.make_node("Identity", ["c_in"], ["c_out"], name="keep"),
        ],
        "body",
        [_scalar("i", TensorProto.INT64), _scalar("c_in", TensorProto.BOOL), _vec("v_in")],
        [_scalar("c_out", TensorProto.BOOL), _vec("v_out")],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x0"], ["x"], name="relu"),
            helper.make_node("Loop", ["n", "", "x"], ["y"], body=body, name="loop"),
            helper.make_node("Mul", ["y", "half"], ["z"], name="mul"),
        ],
        "g",
        [_vec("x0"), _scalar("cond", TensorProto.BOOL)],
        [_vec("z")],
        [
            numpy_helper.from_array(np.array(2, np.int64), "n"),
            numpy_helper.from_array(np.float32(0.5), "half"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("value", [1e-8, 1e5])
def test_a_constant_output_of_a_body_nested_in_a_body_is_kept_float32(value, caplog):
    """The If's then branch wrote it float16 (1e-8 as 5.96e-8: z[0] 2.98e-8, not 5e-9; 1e5 as
    65504: z[0] 32752, not 50000) and fp16_model only warned. Now the main-graph Loop holding
    it stays float32, bodies and all, as for a constant its own body outputs."""
    model = _loop_with_an_if_outputting(value)
    with caplog.at_level(logging.WARNING, logger="graphopt.backends.tensorrt"):
        half = _half(model)
    x0 = np.linspace(-1.0, 1000.0, 4, dtype=np.float32)
    for cond in (True, False):
        feeds = {"x0": x0, "cond": np.array(cond)}
        got, want = run(half, feeds)["z"], run(model, feeds)["z"]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=0)
    loop = next(n for n in half.graph.node if n.op_type == "Loop")
    body_types = {v.name: v.type.tensor_type.elem_type for v in loop.attribute[0].g.output}
    assert body_types["v_out"] == TensorProto.FLOAT
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
