"""A model with a bfloat16 output in `optimize --verify` and `bench`: onnxruntime's python
`run` has no numpy type for it ("No corresponding Numpy type for Tensor Type. bfloat16"), so
--verify refused every such model as "the original model does not run on the comparison
inputs" (the inputs' fault, it said), and bench could not time one. Now the output is read from
its bits (an ml_dtypes.bfloat16 array) and compared as floats, to bfloat16's resolution."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import compare, run
from graphopt.cli import main

VALUES = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 2.5, -3.14159, 1e-3, 65504.0, -0.0], np.float32)


def _nearest_even_bits(values: np.ndarray) -> np.ndarray:
    """bfloat16 bits of finite float32 `values`, rounded to nearest, ties to even (by hand)."""
    bits = values.view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _to_bfloat16(scale: float = 1.0) -> onnx.ModelProto:
    """y = Cast(x · scale, bfloat16), x float32."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "s"], ["xs"]),
            helper.make_node("Cast", ["xs"], ["y"], to=TensorProto.BFLOAT16),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(VALUES)])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [len(VALUES)])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [scale])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_bfloat16_output_is_compared_as_floats():
    same = _to_bfloat16()
    feeds = {"x": VALUES}
    got = run(same, feeds)["y"]
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got.view(np.uint16), _nearest_even_bits(VALUES))
    (d,) = compare(same, same, feeds)
    assert d.max_abs == 0.0 and not d.exact
    assert d.resolution == pytest.approx(8 * 2**-7)  # bfloat16's eps, ROUNDING_ULPS of it
    (d,) = compare(same, _to_bfloat16(2.0), feeds)
    # bfloat16(65504) is 65536, bfloat16(2 · 65504) 131072
    assert d.max_abs == 65536.0 and d.scale == 65536.0 and d.exceeds(1e-2, 0.0)


def test_optimize_verifies_a_bfloat16_output(tmp_path, capsys):
    path = tmp_path / "out.onnx"
    onnx.save(_to_bfloat16(), path)
    out = str(tmp_path / "o.onnx")
    assert main(["optimize", str(path), "-o", out, "--verify"]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out


def test_bench_times_a_bfloat16_output(tmp_path, capsys):
    path = tmp_path / "out.onnx"
    onnx.save(_to_bfloat16(), path)
    assert main(["bench", str(path), "--runs", "2", "--no-progress"]) == 0
    assert "2 runs" in capsys.readouterr().out
