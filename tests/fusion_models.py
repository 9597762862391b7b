"""Helpers for the pattern-rule tests: build small models from ONNX text, run passes, count ops."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
import onnx.parser
from onnx import numpy_helper

from graphopt.api import optimize_with_report
from graphopt.backends.onnxruntime import example_feeds
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.passes.base import Pass
from graphopt.pipeline import RunReport, make_pipeline

RNG = np.random.default_rng(0)


def build(text: str, inits: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """Parse ONNX textual syntax and add `inits` as initializers; the model must check."""
    model = onnx.parser.parse_model(text)
    for name, value in (inits or {}).items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    onnx.checker.check_model(model, full_check=True)
    return model


def rand(*shape: int, low: float = -1.0, high: float = 1.0, dtype: type = np.float32) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(dtype)


def run_passes(
    model: onnx.ModelProto, passes: Iterable[str | Pass], **options: object
) -> tuple[onnx.ModelProto, RunReport]:
    """Run the passes (names or instances) with explanations recorded; the result must check."""
    out, report = optimize_with_report(
        model, make_pipeline("test", list(passes)), explain=True, **options
    )
    onnx.checker.check_model(out, full_check=True)
    return out, report


def ops(model: onnx.ModelProto) -> list[str]:
    """Non-Constant op types in graph order (domain-qualified outside the default domain)."""
    return [
        f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in model.graph.node
        if n.op_type != "Constant"
    ]


def feeds(model: onnx.ModelProto, scale: float = 4.0) -> dict[str, np.ndarray]:
    """Seeded inputs spread over [-scale, scale] so activations' kinks are exercised."""
    return {k: (v * scale).astype(v.dtype) for k, v in example_feeds(model).items()}


def explained(report: RunReport, rule: str, outcome: str) -> list[str]:
    """Reasons (or "" for applied) recorded for `rule` with `outcome`."""
    return [reason for r, _node, o, reason in report.explain if r == rule and o == outcome]


def run_at(model: onnx.ModelProto, inputs: dict[str, np.ndarray], level: str = "all") -> dict:
    from graphopt.backends.onnxruntime import session

    return ort_run(session(model, level=level), inputs)
