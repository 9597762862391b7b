"""`tensorrt.has_qdq` (explicit quantization: the INT8 flag without a calibrator, the Q/DQ
opset for `fp16`) looked at the main graph's nodes only. TensorRT's parser imports If/Loop
bodies with the same importers and inlines model-local functions, so Q/DQ there quantize too:
`build --int8` without calibration data refused such a model ("needs calibration data"), with
data it set up the implicit calibrator on a Q/DQ network, and `fp16_model` left the opset below
19, so a Q/DQ in an If branch read float16 (onnx.checker and onnxruntime refuse the model).
`trt_check.imports_qdq` now looks where the parser imports."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends import tensorrt as trt_backend
from graphopt.backends import trt_runtime
from graphopt.backends.trt_check import imports_qdq
from tests.fusion_models import run_at
from tests.trt_fake import fake_tensorrt

SCALE = numpy_helper.from_array(np.array(0.05, np.float32), "s")
ZERO = numpy_helper.from_array(np.array(0, np.int8), "z")
X = np.array([[0.5, -1.0, 2.03, 3.0]], np.float32)


def _qdq_relu(x: str, y: str, prefix: str = "") -> list[onnx.NodeProto]:
    return [
        helper.make_node("QuantizeLinear", [x, "s", "z"], [f"{prefix}q"], name=f"{prefix}Q"),
        helper.make_node("DequantizeLinear", [f"{prefix}q", "s", "z"], [f"{prefix}d"], name=f"{prefix}DQ"),
        helper.make_node("Relu", [f"{prefix}d"], [y], name=f"{prefix}relu"),
    ]  # fmt: skip


def _io() -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    return (
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )


def _model(nodes, functions=(), extra_inputs=(), opsets=()) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    inputs, outputs = _io()
    graph = helper.make_graph(nodes, "g", inputs + list(extra_inputs), outputs, [SCALE, ZERO])
    imports = [helper.make_opsetid("", 13), *opsets]
    model = helper.make_model(graph, opset_imports=imports, functions=list(functions))
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def if_model() -> onnx.ModelProto:
    """y = If(c, Relu(DQ(Q(x))), -x): the Q/DQ only in the then branch."""
    then = helper.make_graph(
        _qdq_relu("x", "t", "t_"), "then", [], [helper.make_tensor_value_info("t", 1, [1, 4])]
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"], name="neg")],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])],
    )
    node = helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other)
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    return _model([node], extra_inputs=[cond])


def loop_model() -> onnx.ModelProto:
    """y = a Loop of one iteration whose body is Relu(DQ(Q(x)))."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep"),
         *_qdq_relu("x", "r", "b_")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    nodes = [
        helper.make_node("Constant", [], ["n"], name="n", value_int=1),
        helper.make_node("Constant", [], ["go"], name="go", value=numpy_helper.from_array(np.array(True))),
        helper.make_node("Loop", ["n", "go"], ["r_scan"], name="loop", body=body),
        helper.make_node("Squeeze", ["r_scan", "axes"], ["y"], name="squeeze"),
        helper.make_node("Constant", [], ["axes"], name="axes", value=numpy_helper.from_array(np.array([0]))),
    ]  # fmt: skip
    nodes = [nodes[0], nodes[1], nodes[4], nodes[2], nodes[3]]
    return _model(nodes)


def function_model(nested: bool = False) -> onnx.ModelProto:
    """y = QRelu(x), a model-local function holding the Q/DQ (`nested`: called by another)."""
    constants = [
        helper.make_node("Constant", [], ["s"], value=SCALE),
        helper.make_node("Constant", [], ["z"], value=ZERO),
    ]
    inner = helper.make_function(
        "local",
        "QRelu",
        ["x"],
        ["y"],
        constants + _qdq_relu("x", "y"),
        [helper.make_opsetid("", 13)],
    )
    functions = [inner]
    op = "QRelu"
    if nested:
        outer = helper.make_function(
            "local", "Outer", ["x"], ["y"],
            [helper.make_node("QRelu", ["x"], ["y"], domain="local")],
            [helper.make_opsetid("", 13), helper.make_opsetid("local", 1)],
        )  # fmt: skip
        functions.append(outer)
        op = "Outer"
    call = helper.make_node(op, ["x"], ["y"], domain="local", name="call")
    return _model([call], functions, opsets=[helper.make_opsetid("local", 1)])


QUANTIZED = {
    "If branch": if_model,
    "Loop body": loop_model,
    "function": function_model,
    "function in a function": lambda: function_model(nested=True),
}


@pytest.mark.parametrize("case", sorted(QUANTIZED))
@pytest.mark.parametrize("version", [10, 11])
def test_qdq_in_bodies_and_functions_is_seen(case: str, version: int) -> None:
    model = QUANTIZED[case]()
    assert imports_qdq(model, version)
    assert trt_backend.has_qdq(model, version)


def test_no_qdq_where_the_parser_imports_none() -> None:
    """A function holding Q/DQ that no node calls is not imported; a plain model has none."""
    model = function_model()
    del model.graph.node[:]
    model.graph.node.append(helper.make_node("Relu", ["x"], ["y"], name="relu"))
    assert not imports_qdq(model)
    plain = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")])
    assert not trt_backend.has_qdq(plain)


def test_fp16_model_of_a_qdq_branch_loads_and_stays_close() -> None:
    """The Q/DQ opset moves to 19 (float16 scales) for a Q/DQ in an If branch too: before,
    QuantizeLinear-13 read float16 there and onnxruntime refused the model."""
    model = if_model()
    half = trt_backend.fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": X, "c": np.array(True)}
    np.testing.assert_allclose(
        run_at(half, feeds, level="disable")["y"], run_at(model, feeds, level="disable")["y"],
        atol=0.01,
    )  # fmt: skip


@pytest.mark.parametrize("case", ["If branch", "Loop body"])
def test_build_int8_of_qdq_in_a_body_needs_no_calibration(monkeypatch, tmp_path, case) -> None:  # type: ignore[no-untyped-def]
    """TensorRT 10, weak typing: a Q/DQ model builds with the INT8 flag and no calibrator;
    before, `--int8` on it without calibration data was refused."""
    fake = fake_tensorrt("10.16.1.11")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))
    info = trt_backend.build_engine(QUANTIZED[case](), tmp_path / "m.plan", int8=True)
    assert info.precision == "int8"
    assert ("set_flag", "INT8") in fake.calls
    assert ("int8_calibrator",) not in fake.calls
