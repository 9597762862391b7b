"""A pass that fails in an unplanned way is one line naming the pass (H212).

`PassManager._run_pass` wrapped a pass's exception as "pass NAME: Type: message" with the whole
message, which for onnx's and numpy's errors runs to many lines (the CLI printed them all
after "error:"); and a pass whose `run` returned no `PassResult` (None, a bool) was an
AttributeError traceback ('NoneType' object has no attribute 'changed') naming no pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

import graphopt
from graphopt.errors import PassError
from graphopt.passes.base import Pass, PassContext, PassResult
from graphopt.pipeline import make_pipeline
from tests.models_util import matmul_model


@dataclass
class _Returns(Pass):
    """Not registered: a pass as a user writes one, returning `value`."""

    name = "returns-something"
    value: Any = None

    def run(self, graph: Any, ctx: PassContext) -> Any:
        return self.value


@dataclass
class _Raises(Pass):
    name = "raises-something"
    error: Any = None

    def run(self, graph: Any, ctx: PassContext) -> PassResult:
        raise self.error


@pytest.mark.parametrize("value", [None, True, {"changed": True}])
def test_a_pass_that_returns_no_pass_result_is_a_pass_error(value: object) -> None:
    with pytest.raises(PassError) as err:
        graphopt.optimize(matmul_model(), make_pipeline("t", [_Returns(value)]))
    assert str(err.value) == (
        f"pass returns-something: returned {value!r}, not a PassResult(changed, stats)"
    )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (ValueError("first line\nsecond line\n  third"), "ValueError: first line"),
        (ValueError(), "ValueError"),
        (KeyError("x"), "KeyError: 'x'"),
    ],
)
def test_a_pass_that_raises_is_one_line(error: Exception, said: str) -> None:
    with pytest.raises(PassError) as err:
        graphopt.optimize(matmul_model(), make_pipeline("t", [_Raises(error)]))
    assert str(err.value) == f"pass raises-something: {said}"
    assert err.value.__cause__ is error


def test_a_pass_result_is_taken() -> None:
    out = graphopt.optimize(matmul_model(), make_pipeline("t", [_Returns(PassResult(False))]))
    assert [n.op_type for n in out.graph.node] == ["MatMul"]
