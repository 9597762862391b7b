"""Per-group sensitivity: which quantized groups hurt the outputs most, and which to keep float.

A group is one planned node (a Conv/Gemm/MatMul with its activation inputs and weights, or an
Add/Mul/... for the onnxruntime layout). Its sensitivity is the relative RMS error of the model's
outputs against FP32 when only that group is quantized,

    err(Y, Y₀) = sqrt(Σ (Y − Y₀)² / Σ Y₀²)    (all outputs, all sample feeds together),

measured on a few calibration feeds. `choose_float_groups` keeps the `keep_float` worst groups in
float, then, with an `accuracy_target`, keeps adding the next worst until the fully quantized
model's error is at most the target (or a quarter of the groups are float).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx

from graphopt.quant.collect import Feed, run_outputs
from graphopt.quant.placement import Plan
from graphopt.quant.qdq import ActivationQuant, insert_qdq

log = logging.getLogger("graphopt.quant")


def relative_error(ref: list[Feed], got: list[Feed]) -> float:
    num = den = 0.0
    for a, b in zip(ref, got, strict=True):
        for name, x in a.items():
            x64 = x.astype(np.float64)
            num += float(np.sum((b[name].astype(np.float64) - x64) ** 2))
            den += float(np.sum(x64**2))
    return float(np.sqrt(num / den)) if den > 0 else float(np.sqrt(num))


def rank_groups(
    model: onnx.ModelProto,
    placement: Plan,
    params: dict[str, ActivationQuant],
    samples: list[Feed],
    reference: list[Feed],
    keep: set[str],
    threads: int = 0,
) -> list[tuple[str, float]]:
    """(node, error when only it is quantized), worst first."""
    names = [n for n in placement.nodes if n not in keep]
    ranking = []
    for name in names:
        others = set(placement.nodes) - {name}
        one = insert_qdq(model, placement, params, others)
        ranking.append((name, relative_error(reference, run_outputs(one, samples, threads))))
    ranking.sort(key=lambda item: -item[1])
    return ranking


def choose_float_groups(
    model: onnx.ModelProto,
    placement: Plan,
    params: dict[str, ActivationQuant],
    samples: list[Feed],
    keep: set[str],
    keep_float: int,
    accuracy_target: float | None,
    threads: int = 0,
) -> tuple[list[str], list[tuple[str, float]], float]:
    """(groups to keep float, sensitivity ranking, final relative error)."""
    reference = run_outputs(model, samples, threads)
    ranking = rank_groups(model, placement, params, samples, reference, keep, threads)
    chosen = [n for n, _ in ranking[:keep_float]]

    def error_with(floating: list[str]) -> float:
        full = insert_qdq(model, placement, params, keep | set(floating))
        return relative_error(reference, run_outputs(full, samples, threads))

    error = error_with(chosen)
    if accuracy_target is not None:
        limit = max(len((keep_float and chosen) or []), len(ranking) // 4)
        for name, _ in ranking[len(chosen) :]:
            if error <= accuracy_target or len(chosen) >= limit:
                break
            chosen.append(name)
            error = error_with(chosen)
        log.info(
            "accuracy target %g: %d groups float, error %.4g", accuracy_target, len(chosen), error
        )
    return chosen, ranking, error
