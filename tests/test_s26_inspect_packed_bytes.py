"""inspect counted a weight's bytes as elements times numpy's itemsize, which is 1 for INT4,
UINT4 and FLOAT4E2M1 (ml_dtypes): an INT4 weight of 32 elements, stored in 16 bytes, was
reported as 32 (the parameter bytes of an int4-quantized model doubled). Types of fewer bits
than a byte are counted packed now, as onnx stores them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.helper as h
import pytest
from onnx import TensorProto, numpy_helper

from graphopt.cli import main


@pytest.mark.parametrize(
    ("dtype", "values", "stored"),
    [
        (TensorProto.INT4, list(range(-4, 4)) * 4, 16),
        (TensorProto.UINT4, list(range(8)) * 4, 16),
    ],
)
def test_four_bit_weight_bytes(tmp_path, capsys, dtype, values, stored) -> None:  # type: ignore[no-untyped-def]
    w = h.make_tensor("w", dtype, [4, 8], values)
    s = numpy_helper.from_array(np.array(0.5, np.float32), "s")
    graph = h.make_graph(
        [
            h.make_node("DequantizeLinear", ["w", "s"], ["wf"]),
            h.make_node("MatMul", ["x", "wf"], ["y"]),
        ],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [w, s],
    )
    path = str(tmp_path / "m.onnx")
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 21)]), path)
    assert main(["inspect", "--json", path]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameters"] == 33
    assert report["parameter_bytes"] == stored + 4
    assert main(["inspect", path]) == 0
    assert f"parameters: 33 ({stored + 4} B)" in capsys.readouterr().out
