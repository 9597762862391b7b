"""`graphopt.ir.values.declared_dims`: the one reader of a ValueInfo's dims."""

from __future__ import annotations

import onnx
import onnx.helper as oh

from graphopt.ir.values import declared_dims


def _vi() -> onnx.ValueInfoProto:
    vi = oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, "N", None])
    vi.type.tensor_type.shape.dim.add().dim_param = ""  # set, but empty: no symbol
    return vi


def test_values_params_and_unknown_dims():
    vi = _vi()
    assert declared_dims(vi) == (1, "N", None, None)
    assert declared_dims(vi, unknown="?") == (1, "N", "?", "?")
    assert declared_dims(vi, symbolic=False) == (1, None, None, None)


def test_no_shape_or_no_tensor_is_none():
    no_shape = oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)
    assert declared_dims(no_shape) is None
    scalar = oh.make_tensor_value_info("s", onnx.TensorProto.FLOAT, [])
    assert declared_dims(scalar) == ()
    seq = oh.make_tensor_sequence_value_info("q", onnx.TensorProto.FLOAT, [2])
    assert declared_dims(seq) is None


def test_a_negative_dim_value_is_unknown():
    """Older paddle2onnx writes a dynamic batch as dim_value -1 (PP-OCRv3's recognizer): no
    size, so no pass may take it for one."""
    vi = oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [-1, 3, 0])
    assert declared_dims(vi) == (None, 3, 0)
    assert declared_dims(vi, unknown="?") == ("?", 3, 0)
