"""The one error hierarchy of graphopt.

Every error the library raises on purpose is a `GraphoptError`; the CLI prints its message as one
line and exits with code 2. Messages say what was wrong, where (file, node, op, tensor) and what
to do about it.
"""

from __future__ import annotations

from typing import Any

import onnx


class GraphoptError(Exception):
    """Base class of every error graphopt raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its `args` (the message) and attributes, rebuilt without `__init__`:
        Exception's own way calls `type(e)(*e.args)`, which a subclass taking other arguments
        than its message could not take (OpsetConversionError(kind, reason, message): a
        TypeError) or took for another (NonFiniteValues(what) wrapped the whole message in a
        second one). multiprocessing and concurrent.futures pickle a worker's error."""
        return (_rebuilt, (type(self), self.args), self.__dict__ or None)


def _rebuilt(cls: type[GraphoptError], args: tuple[Any, ...]) -> GraphoptError:
    """A `cls` error holding `args`, its `__init__` not run (pickle sets its attributes)."""
    return cls.__new__(cls, *args)  # (BaseException.__new__ sets .args)


class LoadError(GraphoptError):
    """The input is not a readable, well-formed ONNX model."""


class SaveError(GraphoptError):
    """The output could not be written (nothing partial is left behind)."""


class PassError(GraphoptError):
    """A pass failed; the message names the pass, the node and its op."""

    def __init__(self, message: str, *, pass_name: str = "", node: str = "", op: str = ""):
        where = ", ".join(
            part
            for part in (
                f"pass {pass_name}" if pass_name else "",
                f"node {node!r}" if node else "",
                f"op {op}" if op else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.pass_name = pass_name
        self.node = node
        self.op = op


class PipelineError(GraphoptError):
    """A pipeline (YAML or name) is unknown or invalid; the message names file, line and choices."""


class VerifyError(GraphoptError):
    """A model failed verification (checker, or outputs differ from the original)."""


class QuantizeError(GraphoptError):
    """Calibration or Q/DQ insertion failed (bad calibration data, unsupported model, ...)."""


class BackendError(GraphoptError):
    """A runtime backend (onnxruntime, TensorRT) is missing or failed."""


class OptionError(GraphoptError, ValueError):
    """A function was given an argument value it does not take (an analysis method, a group
    size); the message names the valid ones. Also a `ValueError`, what Python code expects."""


class OpsetConversionError(GraphoptError):
    """`graphopt.ir.opset_conversion.convert_opset` did not convert a model: `kind` says why
    ("local-functions", "misconverted" or "converter-failed"), `reason` in words. Each caller
    decides what a refusal means to it (keep the opset, or stop with its own error)."""

    def __init__(self, kind: str, reason: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.reason = reason


def first_line(error: BaseException, text: str | None = None) -> str:
    """The first line of `error`'s message, or of `text` (the message as a caller rewrote it:
    the model's names escaped), its type's name when it has none: onnx, onnxruntime and
    protobuf raise untyped errors whose messages run to many lines."""
    text = (str(error) if text is None else text).strip()
    return text.splitlines()[0] if text else type(error).__name__


# What onnx.checker.check_model(full_check=True) raises on a bad model: its own error, shape
# inference's, and a bare ValueError from its C++ code ("Invalid tensor data type 99.")
CHECKER_ERRORS: tuple[type[Exception], ...] = (
    onnx.checker.ValidationError,
    onnx.shape_inference.InferenceError,
    ValueError,
)
