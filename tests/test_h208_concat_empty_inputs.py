"""merge-concats drops an empty constant input of a Concat only when it joins the others: the
same element type and rank, and its other dims equal to a kept input's static ones. One of
another rank, type or other dims fails the original in onnxruntime (and the checker); dropped,
the rewritten model ran."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.pipeline import make_pipeline
from tests.conftest import assert_same_outputs
from tests.models_util import run

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'
X = {"x": np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)}


def concat_with(empty: str, axis: int) -> onnx.ModelProto:
    """y = Concat(x, e) with x float[2, 3] and e the empty Constant `empty` (ONNX text)."""
    return onnx.parser.parse_model(
        HEADER + "g (float[2,3] x) => (float[2,3] y) {"
        f" e = Constant<value={empty}{{}}>() y = Concat<axis={axis}>(x, e) }}"
    )


@pytest.mark.parametrize(
    ("empty", "axis"),
    [("float[0]", 0), ("float[0,5]", 0), ("int64[0,3]", 0), ("float[2,0,1]", 1)],
    ids=["rank", "other-dim", "type", "rank3"],
)
def test_an_empty_input_that_does_not_fit_is_kept(empty: str, axis: int) -> None:
    model = concat_with(empty, axis)
    with pytest.raises(Exception):  # noqa: B017 (onnxruntime's own error types)
        ort_run(model, X)
    out = graphopt.optimize(model, make_pipeline("test", ["merge-concats"]))
    (concat,) = [n for n in out.graph.node if n.op_type == "Concat"]
    assert len(concat.input) == 2


@pytest.mark.parametrize("axis", [1, -1])
def test_an_empty_input_that_fits_is_still_dropped(axis: int) -> None:
    model = concat_with("float[2,0]", axis)
    out = run(model, "merge-concats")
    (concat,) = [n for n in out.graph.node if n.op_type == "Concat"]
    assert list(concat.input) == ["x"]
    assert_same_outputs(model, out, X)
