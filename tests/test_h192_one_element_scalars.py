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
from onnx import helper, numpy_helper

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


@pytest.mark.parametrize(
    ("inner", "outer", "rule"),
    [
        ("Mul", "Mul", "merge-mul-mul"),
        ("Div", "Mul", "merge-div-mul"),
        ("Mul", "Div", "merge-mul-div"),
        ("Add", "Add", "merge-add-add"),
        ("Sub", "Add", "merge-sub-add"),
        ("Add", "Sub", "merge-add-sub"),
    ],
)
def test_merged_scalar_constants_stay_scalars(inner: str, outer: str, rule: str) -> None:
    """(x ∘ a) ∘ b of a 0-d x and 0-d constants a, b is 0-d. The merge rules' `combine`
    returned np.ascontiguousarray(a ∘ b), which numpy makes 1-D: x ∘ [a ∘ b] of shape [1],
    and the graph output y changed from a scalar to shape [1] (every pipeline; onnxruntime
    runs the result without complaint). The merged constant now keeps the shape of a ∘ b."""
    model = onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1] x) => (float[1] y) {{
          t = {inner}(x, a)
          y = {outer}(t, b)
        }}"""
    )
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, []))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, []))
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1.5, np.float32), "a"),
            numpy_helper.from_array(np.array(4.0, np.float32), "b"),
        ]
    )
    onnx.checker.check_model(model, full_check=True)
    feed = {"x": np.array(3.0, np.float32)}
    want = run(model, feed, level="disable")["y"]
    assert want.shape == ()
    for pipeline in ("default", "tensorrt", "ort-cpu"):
        out, report = graphopt.optimize_with_report(model, pipeline=pipeline, explain=True)
        onnx.checker.check_model(out, full_check=True)
        assert (rule, "applied") in {(r, o) for r, _node, o, _why in report.explain}, pipeline
        assert len(out.graph.node) == 1, pipeline
        got = run(out, feed, level="disable")["y"]
        assert got.shape == (), pipeline
        np.testing.assert_allclose(got, want, rtol=1e-6)
