"""`check_tensorrt` on attributes and constants of a type the op does not take.

The attribute rules read each attribute as its ONNX type and each constant as numbers:
a STRING `axis` (Hardmax, TensorScatter, QuantizeLinear), STRING Upsample `scales`, a STRING
or FLOAT (NaN) TopK K, a STRING Q/DQ scale or zero point raised ValueError, and a
QuantizeLinear without an output IndexError: a traceback from `graphopt check` (exit 1). Such
a model is not valid ONNX; it is now a finding, and the check goes on. An empty scale tensor
passed without a word (every one of no values is > 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.trt_check import check_tensorrt
from graphopt.cli import main

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)


def _model(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], opset: int = 17
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [X], [Y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _strings(name: str) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.STRING, [1], [b"a"])


def _scale(value: object = 0.5, name: str = "s") -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _zero(name: str = "z") -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros([], np.int8), name)


def _qdq(scale: onnx.TensorProto, zero: onnx.TensorProto, **q_attrs: object) -> onnx.ModelProto:
    return _model(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **q_attrs),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
        ],
        [scale, zero],
    )


CASES = {
    "hardmax axis": (
        _model([helper.make_node("Hardmax", ["x"], ["y"], axis="a")], []),
        "onnx-invalid",
        "attribute 'axis' is STRING, ONNX Hardmax's INT",
    ),
    "tensorscatter axis": (
        _model([helper.make_node("TensorScatter", ["x", "x"], ["y"], axis="a")], [], opset=24),
        "onnx-invalid",
        "attribute 'axis' is STRING, ONNX TensorScatter's INT",
    ),
    "upsample scales": (
        _model([helper.make_node("Upsample", ["x"], ["y"], mode="linear", scales="ab")], []),
        "onnx-invalid",
        "attribute 'scales' is STRING, ONNX Upsample's FLOATS",
    ),
    "quantize axis": (  # per-channel weight scales: the axis is read
        _model(
            [
                helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"], axis="a"),
                helper.make_node("DequantizeLinear", ["q", "s", "z"], ["wd"], axis=0),
                helper.make_node("Conv", ["x", "wd"], ["y"]),
            ],
            [
                numpy_helper.from_array(np.ones([4, 3, 1, 1], np.float32), "w"),
                _scale(np.full([4], 0.5)),
                numpy_helper.from_array(np.zeros([4], np.int8), "z"),
            ],
        ),
        "onnx-invalid",
        "attribute 'axis' is STRING, ONNX QuantizeLinear's INT",
    ),
    "topk string k": (
        _model(
            [helper.make_node("TopK", ["x", "k"], ["y", "i"])],
            [helper.make_tensor("k", TensorProto.STRING, [1], [b"a"])],
        ),
        "unsupported-attribute",
        "TopK K 'k' is STRING: ONNX's TopK takes an INT64 K",
    ),
    "topk nan k": (
        _model(
            [helper.make_node("TopK", ["x", "k"], ["y", "i"])],
            [numpy_helper.from_array(np.array([np.nan], np.float32), "k")],
        ),
        "unsupported-attribute",
        "TopK K 'k' is FLOAT: ONNX's TopK takes an INT64 K",
    ),
    "string scale": (
        _qdq(_strings("s"), _zero()),
        "qdq-scale",
        "scale 's' is a string tensor; TensorRT needs float scales",
    ),
    "empty scale": (
        _qdq(_scale(np.zeros([0])), _zero()),
        "qdq-scale",
        "scale 's' holds no value; TensorRT needs float scales",
    ),
    "string zero point": (
        _qdq(_scale(), _strings("z")),
        "qdq-type",
        "quantized type STRING is not supported",
    ),
    "quantize without output": (
        _model(
            [
                helper.make_node("QuantizeLinear", ["x", "s", "z"], []),
                helper.make_node("Relu", ["x"], ["y"]),
            ],
            [_scale(), _zero()],
        ),
        "onnx-invalid",
        "QuantizeLinear has no output",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_value_of_a_type_the_op_does_not_take_is_a_finding(case: str) -> None:
    model, rule, said = CASES[case]
    findings = check_tensorrt(model)
    said_so = [f for f in findings if said in f.message]  # (a Q and its DQ may both say it)
    assert {(f.rule, f.severity) for f in said_so} == {(rule, "error")}, list(map(str, findings))


def test_graphopt_check_says_it_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(CASES["quantize axis"][0], path)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert any(
        line.startswith(
            "error: [onnx-invalid] unnamed QuantizeLinear node writing 'q': "
            "attribute 'axis' is STRING"
        )
        for line in out.splitlines()
    ), out


def test_values_of_the_types_the_ops_take_are_judged_as_before() -> None:
    """Control (passes on the parent too): the same ops, well typed."""
    k = numpy_helper.from_array(np.array([2], np.int64), "k")
    topk = _model([helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=-1)], [k])
    assert check_tensorrt(topk) == []
    assert check_tensorrt(_qdq(_scale(), _zero())) == []
    hardmax = _model([helper.make_node("Hardmax", ["x"], ["y"], axis=1)], [])
    assert check_tensorrt(hardmax) == []
