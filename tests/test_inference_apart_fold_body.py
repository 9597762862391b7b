"""Dims that ONNX inference (which onnx.checker and onnxruntime's loader run) counts otherwise
than onnxruntime computes them: MaxPool(k 1, s 2, ceil_mode=1) of 4×4 is [1, 1, 2, 2] in
onnxruntime, [1, 1, 3, 3] to inference (b74cde3 made eliminate-noops, merge-reshapes,
transpose-to-reshape and simplify-shape-subgraphs refuse rewrites proven from such dims).
Two places still used them (H189 found both, left for their owners):

- constant-folding folded Shape(y) of the pool's output to [1, 1, 2, 2]: Add(y,
  ConstantOfShape(Shape(y))) then failed the checker and onnxruntime's load ("Incompatible
  dimensions"), from the default pipeline (the original loads and checks; onnxruntime 1.32
  then fails to run it, its Shape taken from its loader's inference: the result must load
  and check as the original does, and fail no differently);
- an If body reading y was told y's dims as an outer value, so eliminate-noops bypassed the
  body's Reshape(y, [1, 1, 2, 2]) before a MatMul by a [2, 3] weight: the same failure.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.errors import BackendError
from tests.conftest import assert_same_outputs, ort_run

POOL = "MaxPool<kernel_shape=[1,1], strides=[2,2], ceil_mode=1>"
X = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)


def _shape_fold_model() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,1,4,4] x) => (float[a,b,c,d] z) {{
            y = {POOL}(x)
            s = Shape(y)
            c = ConstantOfShape<value=float[1] {{1}}>(s)
            z = Add(y, c) }}"""
    )


def _body_model() -> onnx.ModelProto:
    branch = """{name} () => (float[p,q,r,t] {out}) {{
           s{n} = Constant<value=int64[4] {{1,1,2,2}}>()
           w{n} = Constant<value=float[2,3] {{1,2,3,4,5,6}}>()
           u{n} = Reshape(y, s{n})
           {out} = MatMul(u{n}, w{n}) }}"""
    return onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,1,4,4] x, bool c) => (float[a,b,c,d] z) {{
            y = {POOL}(x)
            z = If(c) <then_branch = {branch.format(name="g1", out="o1", n=1)},
                       else_branch = {branch.format(name="g2", out="o2", n=2)}> }}"""
    )


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
def test_shape_of_a_ceil_mode_pool_is_not_folded_to_onnxruntime_dims(pipeline: str) -> None:
    model = _shape_fold_model()
    onnx.checker.check_model(model, full_check=True)
    result = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(result, full_check=True)
    assert "Shape" in [n.op_type for n in result.graph.node]
    for m in (model, result):
        with pytest.raises(BackendError, match="broadcast an axis by a dimension other than 1"):
            ort_run(m, {"x": X})


@pytest.mark.parametrize("pipeline", [["eliminate-noops"], "default"])
def test_a_body_reshape_of_a_ceil_mode_pool_is_kept(pipeline, tmp_path) -> None:
    model = _body_model()
    if isinstance(pipeline, list):
        path = tmp_path / "p.yaml"
        path.write_text("name: p\npasses:\n" + "".join(f"  - {p}\n" for p in pipeline))
        pipeline = str(path)
    result = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(result, full_check=True)
    branch = next(a.g for a in result.graph.node[-1].attribute if a.name == "then_branch")
    assert "Reshape" in [n.op_type for n in branch.node]
    for c in (True, False):
        assert_same_outputs(model, result, {"x": X, "c": np.array(c)})
