"""The error merge and split raise (a `GraphoptError`, so the CLI prints one line, exit 2), and
the checker call both make before returning a model."""

from __future__ import annotations

import onnx

from graphopt.analysis.inference_aborts import full_check
from graphopt.errors import CHECKER_ERRORS, GraphoptError, first_line


class MergeError(GraphoptError):
    """Models cannot be merged (irreconcilable opsets or inputs), or a split asks for what the
    model does not have."""


def check_model(model: onnx.ModelProto, what: str) -> None:
    """onnx.checker (full check) on `model`; a failure is a `MergeError` with the checker's first
    line, e.g. "the merged model fails onnx.checker: ..." for `what="merged"`. A model over
    2 GiB, which onnx.checker cannot take in memory (protobuf's EncodeError, a traceback: two
    1.08 GB models could not be merged), is checked from a temporary copy with external data."""
    from graphopt.ir.model_io import _over_two_gib

    try:
        if _over_two_gib(model):
            _check_from_file(model)
        else:
            full_check(model)
    except CHECKER_ERRORS as e:
        # (a ValueError: full_check's shape inference on an unknown element type, e.g. 99)
        first = first_line(e)
        raise MergeError(f"the {what} model fails onnx.checker: {first}") from e


def _check_from_file(model: onnx.ModelProto) -> None:
    """onnx.checker (full check) on `model` written with external data into a temporary folder
    (removed after), as onnx asks of a model over 2 GiB ('call check_model with model path')."""
    from graphopt.ir.model_io import temporary_file_with_external_data

    with temporary_file_with_external_data(model) as path:
        onnx.checker.check_model(str(path), full_check=True)
