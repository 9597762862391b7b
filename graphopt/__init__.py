"""graphopt: graph-level compiler passes for ONNX detection models.

Public API: `optimize`, `quantize`, `merge`, `split`, `GraphoptError` (and subclasses in
`graphopt.errors`), `graphopt.analysis.post_dominator_tree`, `graphopt.analysis.fuse_ops`.
`quantize`, `merge` and `split` load on first use (`import graphopt` stays fast), and are in
`__all__` like the rest.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

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


def __getattr__(name: str) -> Any:
    # Heavier entry points load on first use so `import graphopt` stays fast.
    if name == "quantize":
        from graphopt.quant.api import quantize

        return quantize
    if name in ("merge", "split"):
        from graphopt import multitask

        return getattr(multitask, name)
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
