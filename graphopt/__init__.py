"""graphopt: graph-level compiler passes for ONNX detection models.

Public API: `optimize`, `quantize`, `merge`, `split`, `GraphoptError` (and subclasses in
`graphopt.errors`), `graphopt.analysis.post_dominator_tree`, `graphopt.analysis.fuse_ops`.
Every name loads on first use, as do the subpackages (`graphopt.api`, `graphopt.ir`, ...):
`import graphopt` imports neither onnx nor numpy, so that the `graphopt` command reaches its
Ctrl-C handler (`graphopt.cli.run_cli`) before those imports start (a Ctrl-C during them was a
KeyboardInterrupt traceback). `from graphopt import optimize` and `graphopt.optimize` work as
ever, and every public name is in `__all__`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what the names below load, for type checkers
    from graphopt.api import optimize, optimize_with_report
    from graphopt.errors import (
        BackendError,
        GraphoptError,
        LoadError,
        OptionError,
        PassError,
        PipelineError,
        QuantizeError,
        SaveError,
        VerifyError,
    )
    from graphopt.multitask.merge import merge
    from graphopt.multitask.split import split
    from graphopt.quant.api import quantize

# public name -> the module it is defined in
_LAZY: dict[str, str] = {
    "optimize": "graphopt.api",
    "optimize_with_report": "graphopt.api",
    "quantize": "graphopt.quant.api",
    "merge": "graphopt.multitask",
    "split": "graphopt.multitask",
    **dict.fromkeys(
        (
            "BackendError",
            "GraphoptError",
            "LoadError",
            "OptionError",
            "PassError",
            "PipelineError",
            "QuantizeError",
            "SaveError",
            "VerifyError",
        ),
        "graphopt.errors",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        if name not in ("quantize", "merge", "split"):  # (as before: looked up on each use)
            globals()[name] = value
        return value
    if name.isidentifier() and not name.startswith("__"):  # a subpackage (`graphopt.ir`)
        # as an attribute; not a dotted or other name no attribute has ('ir.model_io' gave
        # the module graphopt.ir.model_io, '.x' and 'ir..x' a ModuleNotFoundError, which
        # hasattr does not catch)
        try:
            return importlib.import_module(f"graphopt.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"graphopt.{name}":  # one of its own imports is missing: say that
                raise
    raise AttributeError(f"module 'graphopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BackendError",
    "GraphoptError",
    "LoadError",
    "OptionError",
    "PassError",
    "PipelineError",
    "QuantizeError",
    "SaveError",
    "VerifyError",
    "__version__",
    "merge",
    "optimize",
    "optimize_with_report",
    "quantize",
    "split",
]
