"""Simplify review 11: the clean-up passes of passes/simplify.yaml (and the default pipeline's)
on models the earlier reviews and fuzzing did not build (each test fails on the commit before
its fix)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import graphopt
from tests.conftest import assert_same_outputs


def _parse(text: str) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    model.ir_version = 8
    return model


# ---------------------------------------------------------------------------------------------
# 1. a Reshape whose target is an overridable default (IR >= 4: an initializer that is also a
#    graph input) has no rank until it runs


def _reshape_by_overridable(body: str, default: list[int]) -> onnx.ModelProto:
    """y = Reshape(x, s), s an initializer (`default`) that is also the graph input int64[K]."""
    model = _parse(
        f"""<ir_version: 8, opset_import: ["" : 17]>
        g (float[6] x, int64[K] s) => (float[a, b] z) {{ y = Reshape(x, s) {body} }}"""
    )
    model.graph.output[0].type.tensor_type.ClearField("shape")
    model.graph.initializer.append(numpy_helper.from_array(np.array(default, np.int64), "s"))
    return model


@pytest.mark.parametrize(
    ("body", "default", "fed"),
    [
        ("z = Transpose(y)", [6], [2, 3]),  # rank 1 by the default: a no-op Transpose
        ("z = Flatten(y)", [2, 3], [1, 2, 3]),  # rank 2 by the default: a no-op Flatten
        # axis 1 and axis -1 are one axis at rank 2 only: the Concats were merged
        ("w = Neg(y) c = Concat<axis=1>(y, w) d = Concat<axis=1>(w, y) z = Concat<axis=-1>(c, d)",
         [2, 3], [1, 2, 3]),
    ],
)  # fmt: skip
@pytest.mark.parametrize("pipeline", ["simplify", "default"])
def test_the_rank_of_a_reshape_by_an_overridable_target_is_not_the_defaults(
    body: str, default: list[int], fed: list[int], pipeline: str
) -> None:
    """The rank read off a Reshape's constant target (`LazyShapes.local_rank`) took an
    overridable default's length: fed another target, the Transpose, Flatten or Concat axis
    that rank proved a no-op (or equal) was not."""
    model = _reshape_by_overridable(body, default)
    out = graphopt.optimize(model, pipeline)
    x = np.arange(6, dtype=np.float32)
    assert_same_outputs(model, out, {"x": x, "s": np.array(fed, np.int64)})
    assert_same_outputs(model, out, {"x": x})  # the default still works
