"""`run`'s outputs of the types numpy lacks (599d962) under onnx before 1.18, which pyproject
takes (onnx>=1.16): its numpy_helper.to_array decodes bfloat16 and the float8s to float32
values and int4/uint4 to int8/uint8, not to ml_dtypes arrays. `compare` then judged a bfloat16
output as a float32 one, to float32's epsilon, where the code before 599d962 (ml_dtypes'
bfloat16 view of the bits) judged it to bfloat16's: a rewrite's one-step rounding of a bfloat16
output failed --verify. Now `run` gives the ml_dtypes array whichever onnx decoded it.

onnx 1.16's decoding is emulated here (the installed onnx decodes to ml_dtypes itself)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import compare, run

_ONNX_1_16_DECODES_TO = {
    TensorProto.BFLOAT16: np.float32,
    TensorProto.FLOAT8E4M3FN: np.float32,
    TensorProto.FLOAT8E5M2: np.float32,
    TensorProto.INT4: np.int8,
    TensorProto.UINT4: np.uint8,
}


@pytest.fixture
def onnx_1_16(monkeypatch: pytest.MonkeyPatch) -> None:
    decode = numpy_helper.to_array

    def to_array(tensor: onnx.TensorProto, base_dir: str = "") -> np.ndarray:
        array = decode(tensor, base_dir)
        wide = _ONNX_1_16_DECODES_TO.get(tensor.data_type)
        return array if wide is None else array.astype(wide)

    monkeypatch.setattr(numpy_helper, "to_array", to_array)


def _cast_to(to: int, scale: float = 1.0) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "s"], ["xs"]),
            helper.make_node("Cast", ["xs"], ["y"], to=to),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", to, [4])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [scale])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize(
    ("to", "dtype"),
    [
        (TensorProto.BFLOAT16, ml_dtypes.bfloat16),
        (TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn),
        (TensorProto.FLOAT8E5M2, ml_dtypes.float8_e5m2),
        (TensorProto.INT4, ml_dtypes.int4),
        (TensorProto.UINT4, ml_dtypes.uint4),
    ],
)
def test_run_gives_the_ml_dtypes_array(onnx_1_16, to, dtype) -> None:
    x = np.array([0.0, 1.0, 3.0, 6.0], np.float32)
    got = run(_cast_to(to), {"x": x})["y"]
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.astype(np.float32), x)


def test_a_bfloat16_output_is_judged_to_bfloat16s_step(onnx_1_16) -> None:
    # 1 + 2**-8 is a tie between 1 and 1 + 2**-7 (even: 1); × 1.001 it rounds up, one step
    feeds = {"x": np.array([1.00390625, 2.0, -3.0, 0.5], np.float32)}
    (d,) = compare(_cast_to(TensorProto.BFLOAT16), _cast_to(TensorProto.BFLOAT16, 1.001), feeds)
    assert d.max_abs == 2.0**-7
    assert d.resolution > float(np.finfo(np.float32).eps)
    assert not d.exceeds(d.default_rtol(1e-4), 1e-5)
