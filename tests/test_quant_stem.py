"""The stem (convolutions before the first downsampling) stays float on the TensorRT target."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.ir import Graph
from graphopt.quant.api import quantize_with_report
from graphopt.quant.stem import stem_nodes


def chain_model(layers: list[tuple[str, int]]) -> onnx.ModelProto:
    """x → a chain of (op, stride) layers, each Conv 3×3 with 4 channels (MaxPool 2×2) → y."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    src, channels, size = "x", 3, 16
    for i, (op, stride) in enumerate(layers):
        out = f"t{i}"
        if op == "Conv":
            w = (rng.standard_normal((4, channels, 3, 3)) * 0.3).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            nodes.append(
                helper.make_node(
                    "Conv",
                    [src, f"w{i}"],
                    [out],
                    name=f"conv{i}",
                    pads=[1, 1, 1, 1],
                    strides=[stride, stride],
                )
            )
            channels = 4
        else:
            nodes.append(
                helper.make_node(
                    op,
                    [src],
                    [out],
                    name=f"{op.lower()}{i}",
                    kernel_shape=[stride, stride],
                    strides=[stride, stride],
                )
            )
        size //= stride
        src = out
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info(src, onnx.TensorProto.FLOAT, [1, channels, size, size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def pixels(count: int = 4) -> list[dict[str, np.ndarray]]:
    """Image-like feeds: integer pixel values 0..255, as a detector without normalisation gets."""
    rng = np.random.default_rng(3)
    return [{"x": rng.integers(0, 256, (1, 3, 16, 16)).astype(np.float32)} for _ in range(count)]


def quantized_inputs(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes that read a DequantizeLinear output as their first input."""
    dq_out = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in model.graph.node if n.input and n.input[0] in dq_out}


@pytest.mark.parametrize(
    "layers, expected",
    [
        ([("Conv", 1), ("Conv", 2), ("Conv", 1)], ["conv0", "conv1"]),  # through the 1st stride
        ([("Conv", 2), ("Conv", 1)], ["conv0"]),
        ([("Conv", 1), ("MaxPool", 2), ("Conv", 1)], ["conv0"]),  # a pool downsamples too
        ([("Conv", 1), ("Conv", 1), ("Conv", 1)], []),  # never downsamples: no stem
        ([("Conv", 1)] * 5 + [("Conv", 2)], []),  # too long to be a stem
    ],
)
def test_stem_nodes(layers, expected) -> None:  # type: ignore[no-untyped-def]
    assert stem_nodes(Graph(chain_model(layers))) == expected


def test_stem_of_a_branching_model_is_every_conv_before_downsampling() -> None:
    # x → conv_a, conv_c (stride 1) → Add → conv_d (stride 2) → conv_e
    w = numpy_helper.from_array(np.ones((3, 3, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv_c", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["a", "c"], ["s"], name="add"),
        helper.make_node("Conv", ["s", "w"], ["d"], name="conv_d", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["d", "w"], ["y"], name="conv_e", pads=[1, 1, 1, 1]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "branch",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert stem_nodes(Graph(model)) == ["conv_a", "conv_c", "conv_d"]


def test_tensorrt_keeps_the_stem_float_by_default() -> None:
    model = chain_model([("Conv", 1), ("Conv", 2), ("Conv", 1), ("Conv", 1)])
    q, report = quantize_with_report(model, pixels(), "minmax", None, "tensorrt", pipeline=False)
    onnx.checker.check_model(q, full_check=True)
    assert report.stem == ["conv0", "conv1"]
    assert "stem kept in float: conv0, conv1" in report.lines()
    assert quantized_inputs(q) == {"conv2", "conv3"}
    assert sorted(report.quantized_nodes) == ["conv2", "conv3"]
    # the cache still carries every calibrated tensor (a TensorRT calibrator deployment reads it)
    assert {"x", "t0", "t1", "t2"} <= set(report.scales)


@pytest.mark.parametrize(
    "target, keep_stem, quantized",
    [
        ("tensorrt", False, {"conv0", "conv1", "conv2", "conv3"}),
        ("onnxruntime", None, {"conv0", "conv1", "conv2", "conv3"}),  # uint8 holds pixels exactly
        ("onnxruntime", True, {"conv2", "conv3"}),
    ],
)
def test_keep_stem_option(target: str, keep_stem: bool | None, quantized: set[str]) -> None:
    model = chain_model([("Conv", 1), ("Conv", 2), ("Conv", 1), ("Conv", 1)])
    q = graphopt.quantize(model, pixels(), target=target, keep_stem=keep_stem, pipeline=False)
    convs = {n for n in quantized_inputs(q) if n.startswith("conv")}
    assert convs == quantized


def test_cli_no_keep_stem(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = chain_model([("Conv", 1), ("Conv", 2), ("Conv", 1)])
    src, calib = tmp_path / "m.onnx", tmp_path / "calib"
    onnx.save(model, src)
    calib.mkdir()
    for i, f in enumerate(pixels()):
        np.save(calib / f"f{i}.npy", f["x"])
    for flag, expected in (([], {"conv2"}), (["--no-keep-stem"], {"conv0", "conv1", "conv2"})):
        out = tmp_path / f"q{len(flag)}.onnx"
        argv = ["quantize", str(src), "-o", str(out), "--calib", str(calib), "--no-progress"]
        assert main([*argv, *flag]) == 0
        assert quantized_inputs(onnx.load(out)) == expected
    assert "stem kept in float: conv0, conv1" in capsys.readouterr().out
