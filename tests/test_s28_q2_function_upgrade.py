"""quantize upgrades a model below opset 13 that has model-local functions by inlining them
first (onnx.version_converter drops local functions: their calls would dangle). It refused
such a model ("inline them first"); now the upgraded, quantized model passes onnx's full check
and computes the float model within quantization tolerance. A call of a function named as an
op onnxruntime defines (com.microsoft:Gelu) is still refused: onnxruntime runs its own op for
it, and the inlined body would compute something else."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt
from graphopt.errors import QuantizeError
from tests.conftest import onnxruntime_int8_level, onnxruntime_runs_seven_bit_int8_fused

_RNG = np.random.default_rng(0)
_W = nh.from_array((_RNG.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32), "w")


def _model(
    opset: int, functions: list[onnx.FunctionProto], call: onnx.NodeProto
) -> onnx.ModelProto:
    """Conv → `call` (a → b) → Conv at default opset `opset`, with `functions`."""
    graph = h.make_graph(
        [
            h.make_node("Conv", ["x", "w"], ["a"], pads=[1] * 4, name="c0"),
            call,
            h.make_node("Conv", ["b", "w"], ["y"], pads=[1] * 4, name="c1"),
        ],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [_W],
    )
    domains = sorted({f.domain for f in functions})
    imports = [h.make_opsetid("", opset), *(h.make_opsetid(d, 1) for d in domains)]
    model = h.make_model(graph, opset_imports=imports, functions=functions)
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def _unsqueeze_relu_squeeze(opset: int) -> onnx.FunctionProto:
    return h.make_function(
        "local",
        "Act",
        ["a"],
        ["b"],
        [
            h.make_node("Unsqueeze", ["a"], ["u"], axes=[0]),
            h.make_node("Relu", ["u"], ["r"]),
            h.make_node("Squeeze", ["r"], ["b"], axes=[0]),
        ],
        [h.make_opsetid("", opset)],
    )


def _nested(opset: int) -> list[onnx.FunctionProto]:
    """local.Outer(a) = local.Act(a) · 0.5 + local.Act(-a): a function calling another."""
    outer = h.make_function(
        "local",
        "Outer",
        ["a"],
        ["b"],
        [
            h.make_node("Act", ["a"], ["p"], domain="local"),
            h.make_node("Neg", ["a"], ["n"]),
            h.make_node("Act", ["n"], ["q"], domain="local"),
            h.make_node("Constant", [], ["half"], value=nh.from_array(np.float32(0.5), "half")),
            h.make_node("Mul", ["p", "half"], ["ph"]),
            h.make_node("Add", ["ph", "q"], ["b"]),
        ],
        [h.make_opsetid("", opset), h.make_opsetid("local", 1)],
    )
    return [_unsqueeze_relu_squeeze(opset), outer]


_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
}


def _run(
    model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], level: str = "all"
) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = _LEVELS[level]
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return [session.run(None, feed)[0] for feed in feeds]


def _assert_quantizes_like_float(model: onnx.ModelProto, target: str) -> None:
    feeds = [{"x": _RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)} for _ in range(6)]
    quantized = graphopt.quantize(
        model, feeds, target=target, keep_stem=False, accuracy_target=None
    )
    onnx.checker.check_model(quantized, full_check=True)
    assert not quantized.functions
    assert [o.version for o in quantized.opset_import if o.domain in ("", "ai.onnx")] == [13]
    ops = {n.op_type for n in quantized.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Relu"} <= ops
    # at onnxruntime's default level where its fused int8 kernels are right, else as written
    # (a CPU without VNNI: full-range int8 weights saturate them); there also fused, with
    # 7-bit weights (conftest.onnxruntime_int8_level)
    level = onnxruntime_int8_level()
    runs = [(quantized, level)]
    if level != "all" and onnxruntime_runs_seven_bit_int8_fused():
        seven = graphopt.quantize(
            model, feeds, target=target, keep_stem=False, accuracy_target=None, reduce_range=True
        )
        runs.append((seven, "all"))
    for candidate, at in runs:
        for want, got in zip(_run(model, feeds), _run(candidate, feeds, at), strict=True):
            assert not np.array_equal(want, got)  # quantized, not the float model handed back
            error = np.max(np.abs(want - got)) / np.max(np.abs(want))
            assert error < 0.05, (at, error)


@pytest.mark.parametrize("opset", [11, 12])
@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_local_function_below_opset_13_is_inlined_and_quantized(opset: int, target: str) -> None:
    call = h.make_node("Act", ["a"], ["b"], domain="local", name="act")
    _assert_quantizes_like_float(_model(opset, [_unsqueeze_relu_squeeze(opset)], call), target)


def test_nested_local_functions_are_inlined_and_quantized() -> None:
    call = h.make_node("Outer", ["a"], ["b"], domain="local", name="outer")
    _assert_quantizes_like_float(_model(11, _nested(11), call), "tensorrt")


def test_a_function_onnxruntime_runs_as_its_own_op_is_refused() -> None:
    """onnxruntime runs com.microsoft:Gelu for the call, not the local function (a Relu):
    inlined, the Relu would run, so the upgrade is refused, naming the op."""
    gelu = h.make_function(
        "com.microsoft", "Gelu", ["a"], ["b"], [h.make_node("Relu", ["a"], ["b"])],
        [h.make_opsetid("", 12)],
    )  # fmt: skip
    call = h.make_node("Gelu", ["a"], ["b"], domain="com.microsoft", name="gelu")
    model = _model(12, [gelu], call)
    feeds = [{"x": _RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)}]
    with pytest.raises(QuantizeError, match=r"runs its own op com\.microsoft:Gelu") as e:
        graphopt.quantize(model, feeds, target="onnxruntime", accuracy_target=None)
    assert "\n" not in str(e.value)
