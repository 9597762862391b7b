"""A model holding onnxruntime's quantized contrib ops other than the QLinear*/Quantize*/
Dequantize*/DynamicQuantize* families (MatMulNBits: onnxruntime's 4-bit weight-only
quantization; QGemm, QAttention, MatMulIntegerToFloat, QOrdered*, ...) is refused as already
quantized, as one holding QuantizeLinear is. quantize took MatMulNBits for one of an ort-*
pipeline's fused ops: target onnxruntime warned to quantize the model 'before an ort-*
pipeline' and put Q/DQ around the rest (exit 0); target tensorrt refused it as an op TensorRT
cannot take, 'an ort-* pipeline's fused ops'. A fused op that is not quantized (QuickGelu) is
read as before."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import QuantizeError

F = onnx.TensorProto.FLOAT


def _model(middle: onnx.NodeProto, weights: list[onnx.TensorProto], k: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w0"], ["a"], name="mm0"),
            middle,
            helper.make_node("MatMul", ["b", "w1"], ["y"], name="mm1"),
        ],
        "g",
        [helper.make_tensor_value_info("x", F, [2, 8])],
        [helper.make_tensor_value_info("y", F, [2, 4])],
        [
            numpy_helper.from_array(rng.normal(0, 0.3, (8, 32)).astype(np.float32), "w0"),
            numpy_helper.from_array(rng.normal(0, 0.3, (k, 4)).astype(np.float32), "w1"),
            *weights,
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    return model


def _nbits() -> onnx.ModelProto:
    """x → MatMul → MatMulNBits (K 32, N 16, 4 bits, block 32) → MatMul → y."""
    rng = np.random.default_rng(1)
    node = helper.make_node(
        "MatMulNBits",
        ["a", "bq", "bs"],
        ["b"],
        domain="com.microsoft",
        K=32,
        N=16,
        bits=4,
        block_size=32,
        name="nbits",
    )
    packed = rng.integers(0, 256, (16, 1, 16)).astype(np.uint8)
    scales = rng.uniform(0.01, 0.1, 16).astype(np.float32)
    return _model(
        node, [numpy_helper.from_array(packed, "bq"), numpy_helper.from_array(scales, "bs")], 16
    )


def _quick_gelu() -> onnx.ModelProto:
    node = helper.make_node("QuickGelu", ["a"], ["b"], domain="com.microsoft", name="gelu")
    return _model(node, [], 32)


def _feeds() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    return [{"x": rng.normal(0, 1, (2, 8)).astype(np.float32)} for _ in range(4)]


@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_a_model_with_matmulnbits_is_already_quantized(target: str) -> None:
    with pytest.raises(QuantizeError) as caught:
        graphopt.quantize(_nbits(), _feeds(), target=target)
    assert str(caught.value).startswith("the model is already quantized (MatMulNBits)")


@pytest.mark.parametrize(
    "op", ["QGemm", "QAttention", "MatMulIntegerToFloat", "QOrderedMatMul", "GatherBlockQuantized"]
)
def test_onnxruntime_quantized_ops_are_named(op: str) -> None:
    node = helper.make_node(op, ["a"], ["b"], domain="com.microsoft", name="q")
    with pytest.raises(QuantizeError, match=rf"already quantized \({op}\)"):
        graphopt.quantize(_model(node, [], 32), _feeds(), target="onnxruntime")


def test_cli_refuses_it_in_one_line(tmp_path, capsys) -> None:
    path, out, calib = tmp_path / "m.onnx", tmp_path / "q.onnx", tmp_path / "calib"
    onnx.save(_nbits(), path)
    calib.mkdir()
    np.save(calib / "a.npy", _feeds()[0]["x"])
    argv = ["quantize", str(path), "-o", str(out), "--calib", str(calib), "--no-progress"]
    code = main([*argv, "--target", "onnxruntime"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "already quantized (MatMulNBits)" in lines[0], err


def test_quick_gelu_is_still_quantized_around(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="graphopt")
    q = graphopt.quantize(_quick_gelu(), _feeds(), target="onnxruntime", accuracy_target=None)
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    assert any(n.op_type == "QuickGelu" for n in q.graph.node)
