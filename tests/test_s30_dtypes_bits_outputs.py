"""Outputs of the element types onnxruntime's python `run` gives no numpy array of (int4, uint4,
the float8s other than float8e4m3fn: "No corresponding Numpy type for Tensor Type. Int4x2") or
gives as its bytes (float8e4m3fn, as uint8). `optimize --verify` refused a model with such an
output as "the original model does not run on the comparison inputs ... give inputs it
accepts", and compared a float8e4m3fn output bit pattern by bit pattern, any rounding
"integer values must be equal". Now `run` copies their bits out and decodes them (ml_dtypes
arrays, as onnx reads them), and `compare` judges floats as floats, to one step of the type."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from graphopt.backends.onnxruntime import compare, run
from graphopt.cli import main

VALUES = np.array([0.3, -1.7, 2.5, 7.0, -6.5, 1.0625], np.float32)
# whole numbers (onnxruntime rounds 2.5 to int4 3, onnx's reference 2), an odd count of them:
# the last byte of an int4 tensor holds one
INTEGERS = {
    TensorProto.INT4: np.array([0, -1, 2, 7, -8, 3, 5], np.float32),
    TensorProto.UINT4: np.array([0, 1, 2, 7, 15, 3, 8], np.float32),
}


def _cast_to(to: int, scale: float = 1.0) -> onnx.ModelProto:
    """y = Cast(x · scale, to), x float32 (opset 21: Cast to int4 and the float8s)."""
    count = len(INTEGERS.get(to, VALUES))
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "s"], ["xs"]),
            helper.make_node("Cast", ["xs"], ["y"], to=to),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [count])],
        [helper.make_tensor_value_info("y", to, [count])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [scale])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


TYPES = {
    "int4": (TensorProto.INT4, ml_dtypes.int4),
    "uint4": (TensorProto.UINT4, ml_dtypes.uint4),
    "float8e4m3fn": (TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn),
    "float8e5m2": (TensorProto.FLOAT8E5M2, ml_dtypes.float8_e5m2),
    "float8e4m3fnuz": (TensorProto.FLOAT8E4M3FNUZ, ml_dtypes.float8_e4m3fnuz),
    "float8e5m2fnuz": (TensorProto.FLOAT8E5M2FNUZ, ml_dtypes.float8_e5m2fnuz),
}


@pytest.mark.parametrize("kind", list(TYPES))
def test_run_decodes_the_output_as_onnx_reads_it(kind):
    to, dtype = TYPES[kind]
    model = _cast_to(to)
    x = INTEGERS.get(to, VALUES)
    got = run(model, {"x": x})["y"]
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert got.dtype == np.dtype(dtype) and got.shape == x.shape
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize("kind", ["int4", "uint4"])
def test_an_integer_output_must_be_equal(kind):
    to, _ = TYPES[kind]
    feeds = {"x": INTEGERS[to]}
    (same,) = compare(_cast_to(to), _cast_to(to), feeds)
    assert same.exact and same.max_abs == 0.0 and not same.exceeds(1e-4, 1e-5)
    (d,) = compare(_cast_to(to), _cast_to(to, 2.0), feeds)  # 7 -> 14: saturated
    assert d.exact and d.max_abs >= 1.0 and d.exceeds(1.0, 1.0)


def test_a_float8_output_is_judged_to_one_step():
    feeds = {"x": VALUES}
    to = TensorProto.FLOAT8E4M3FN
    # 1.0625 is a tie between 1 and 1.125 (even: 1); × 1.001 it rounds up: one step of 0.125
    (d,) = compare(_cast_to(to), _cast_to(to, 1.001), feeds)
    assert not d.exact
    assert d.max_abs == 0.125 and d.scale == 7.0
    assert d.resolution == 0.125  # float8e4m3fn's epsilon (3 mantissa bits)
    assert not d.exceeds(d.default_rtol(1e-4), 1e-5)
    (d,) = compare(_cast_to(to), _cast_to(to, 2.0), feeds)  # 7 -> 14: far beyond one step
    assert d.max_abs == 7.0 and d.exceeds(d.default_rtol(1e-4), 1e-5)


@pytest.mark.parametrize("kind", ["int4", "uint4", "float8e5m2", "float8e4m3fn"])
def test_optimize_verifies_the_output(tmp_path, capsys, kind):
    path = tmp_path / "in.onnx"
    onnx.save(_cast_to(TYPES[kind][0]), path)
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(path), "-o", str(out), "--verify"]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    assert out.exists()
