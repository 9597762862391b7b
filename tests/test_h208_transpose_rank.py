"""merge-transposes composes two Transposes only when x is known to have the perms' rank.
Transpose(Transpose(x[2, 3, 4], [1, 0]), [1, 0]) fails in onnxruntime (a perm of length 2 for
a rank-3 x); composed to the identity and bypassed, the rewritten model ran."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.pipeline import make_pipeline
from tests.conftest import assert_same_outputs
from tests.fusion_models import run_at
from tests.models_util import run

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'


def two_transposes(dims: str, p: str, q: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(
        HEADER + f"g (float[{dims}] x) => (float[{dims}] z) {{"
        f" r = Transpose<perm=[{p}]>(x) y = Transpose<perm=[{q}]>(r) z = Identity(y) }}"
    )


@pytest.mark.parametrize("dims", ["2,3,4", "A,B,C"])
def test_perms_shorter_than_the_rank_are_not_composed(dims: str) -> None:
    model = two_transposes(dims, "1,0", "1,0")
    x = {"x": np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(2, 3, 4)}
    with pytest.raises(Exception):  # noqa: B017 (onnxruntime's own error types)
        run_at(model, x, "disable")  # (onnxruntime's own optimizer cancels them)
    pipeline = make_pipeline("test", ["merge-transposes", "eliminate-dead-code"])
    out = graphopt.optimize(model, pipeline)
    assert [n.op_type for n in out.graph.node].count("Transpose") == 2
    with pytest.raises(Exception):  # noqa: B017
        run_at(out, x, "disable")


def test_perms_of_the_rank_are_still_composed() -> None:
    model = two_transposes("2,3,4", "1,0,2", "1,0,2")
    x = {"x": np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(2, 3, 4)}
    out = run(model, "merge-transposes", "eliminate-dead-code")
    assert [n.op_type for n in out.graph.node] == ["Identity"]
    assert_same_outputs(model, out, x)
