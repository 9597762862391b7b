"""1-element 1-D tensors where ONNX means a scalar (session 20, H192).

numpy 2.4 refuses `float()` / `int()` of an array that is not 0-dimensional; onnxruntime takes a
tensor of shape [1] in many places a scalar is meant. Each test pins a place graphopt read such
a value with a scalar conversion and fails on the commit before its fix.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run


def _hidden_rank_range_model(dtype: type) -> onnx.ModelProto:
    """y = x + Range(start, 8, 1) where start = Reshape(0, Shape([7])) is of shape [1]:
    onnxruntime's inference cannot see that rank (a Reshape to a computed shape) and its Range
    kernel takes a 1-element 1-D start, so the model loads and runs."""
    cast = "rf = Cast<to=1>(r)" if dtype is np.int64 else "rf = Identity(r)"
    model = onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[8] x) => (float[8] y) {{
          s = Shape(seven)
          start = Reshape(zero, s)
          r = Range(start, limit, delta)
          {cast}
          y = Add(x, rf)
        }}"""
    )
    for name, value in {
        "seven": np.array([7], np.int64),
        "zero": np.array(0, dtype),
        "limit": np.array(8, dtype),
        "delta": np.array(1, dtype),
    }.items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
@pytest.mark.parametrize("pipeline", ["default", "tensorrt", "ort-cpu"])
def test_range_of_one_element_bounds_folds(dtype: type, pipeline: str) -> None:
    """constant-folding's Range kernel counted the length with int() / float() of its inputs:
    a start folded to shape [1] failed every pipeline with "PassError: ... TypeError: only
    0-dimensional arrays can be converted to Python scalars". It now reads one-element bounds
    as scalars, as onnxruntime does: the Range folds to [0..7] and the outputs agree."""
    model = _hidden_rank_range_model(dtype)
    feed = {"x": np.arange(8, dtype=np.float32) * 0.5}
    want = run(model, feed, level="disable")["y"]
    np.testing.assert_array_equal(want, np.arange(8, dtype=np.float32) * 1.5)
    out = graphopt.optimize(model, pipeline=pipeline)
    onnx.checker.check_model(out, full_check=True)
    assert "Range" not in [n.op_type for n in out.graph.node]
    np.testing.assert_array_equal(run(out, feed, level="disable")["y"], want)
