"""The error merge and split raise (a `GraphoptError`, so the CLI prints one line, exit 2), and
the checker call both make before returning a model."""

from __future__ import annotations

import onnx

from graphopt.errors import CHECKER_ERRORS, GraphoptError, first_line


class MergeError(GraphoptError):
    """Models cannot be merged (irreconcilable opsets or inputs), or a split asks for what the
    model does not have."""


def check_model(model: onnx.ModelProto, what: str) -> None:
    """onnx.checker (full check) on `model`; a failure is a `MergeError` with the checker's first
    line, e.g. "the merged model fails onnx.checker: ..." for `what="merged"`."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except CHECKER_ERRORS as e:
        # (a ValueError: full_check's shape inference on an unknown element type, e.g. 99)
        first = first_line(e)
        raise MergeError(f"the {what} model fails onnx.checker: {first}") from e
