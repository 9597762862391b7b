"""constant-folding leaves a Split-18 alone whose num_outputs leaves a part empty (H211):
onnxruntime 1.23.2, the newest for Python 3.10, refuses it at run time ("Invalid num_outputs
value of 3" for 2 elements, "Cannot split using values in 'split'" for 4 in 3 parts), 1.32.0
and ONNX's definition give [1], [1], []. Folded, the model ran on 1.23 where the original
failed. Measured with both: parts of 3, 3, 1 (7 in 3) agree and still fold."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.backends.onnxruntime import run, session


def _model(n: int, parts: int) -> onnx.ModelProto:
    values = ", ".join(str(float(v)) for v in range(1, n + 1))
    outputs = ", ".join(f"p{i}" for i in range(parts))
    total = " ".join(f"s{i} = ReduceSum<keepdims = 0>(p{i})\n" for i in range(parts))
    adds = "t0 = Identity(s0)\n" + "".join(f"t{i} = Add(t{i - 1}, s{i})\n" for i in range(1, parts))
    model = onnx.parser.parse_model(
        f"""<ir_version: 9, opset_import: ["" : 18]>
        g (float x) => (float y) {{
          c = Constant<value = float[{n}] {{{values}}}>()
          {outputs} = Split<num_outputs = {parts}>(c)
          {total}
          {adds}
          y = Add(x, t{parts - 1})
        }}"""
    )
    onnx.checker.check_model(model, full_check=True)
    return model


FEEDS = {"x": np.array(0.5, np.float32)}


@pytest.mark.parametrize("n, parts", [(2, 3), (4, 3), (6, 4)])
def test_num_outputs_leaving_a_part_empty_is_not_folded(n: int, parts: int):
    model = _model(n, parts)
    out = graphopt.optimize(model)
    assert "Split" in [node.op_type for node in out.graph.node]
    want = run(session(model, level="disable"), FEEDS)["y"]
    np.testing.assert_array_equal(run(session(out, level="disable"), FEEDS)["y"], want)


def test_num_outputs_with_every_part_filled_still_folds():
    model = _model(7, 3)
    out = graphopt.optimize(model)
    assert "Split" not in [node.op_type for node in out.graph.node]
    want = run(session(model, level="disable"), FEEDS)["y"]
    np.testing.assert_array_equal(run(session(out, level="disable"), FEEDS)["y"], want)
