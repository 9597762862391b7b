"""Graph passes: each module defines one idea and registers its passes in `PASS_REGISTRY`."""

from __future__ import annotations

import importlib

from graphopt.passes.base import (
    PASS_REGISTRY,
    Pass,
    PassContext,
    PassResult,
    all_passes,
    register_pass,
)

# Modules whose import registers built-in passes. Add a module here when you add one.
BUILTIN_PASS_MODULES: tuple[str, ...] = (
    "graphopt.passes.cleanup",
    "graphopt.passes.expose_tensors",
    "graphopt.passes.constants",
    "graphopt.passes.dim_names",
    "graphopt.passes.constant_folding",
    "graphopt.passes.shape_simplify",
    "graphopt.passes.rnn_state",
    "graphopt.passes.noop",
    "graphopt.passes.layout",
    "graphopt.passes.focus",
    "graphopt.passes.cse",
    "graphopt.passes.fusion_functions",
    "graphopt.passes.fuse_patterns",
    "graphopt.passes.ort_nchwc",
)


def _load_builtin_passes() -> None:
    for module in BUILTIN_PASS_MODULES:
        importlib.import_module(module)


__all__ = ["PASS_REGISTRY", "Pass", "PassContext", "PassResult", "all_passes", "register_pass"]
