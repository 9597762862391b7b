"""`graphopt.quantize`: INT8 post-training quantization to an explicit Q/DQ model.

Steps: upgrade to opset 13 when older (per-channel `axis` needs it) → `graphopt.optimize`
(BN folding etc.) → plan Q/DQ placement for the target → calibrate the planned tensors over
the calibration feeds (streaming histograms, one batch alive) or take scales from a TensorRT
calibration cache → insert Q/DQ → optionally keep the most sensitive groups in float →
`onnx.checker` (full check) → optionally write the calibration cache.
"""

from __future__ import annotations

import logging
import numbers
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphopt._options import (
    check_flag,
    given_text,
    is_path,
    refuse_extra_positionals,
    refuse_unknown_options,
)
from graphopt._text import counted, escaped
from graphopt.analysis.inference_aborts import full_check
from graphopt.errors import (
    CHECKER_ERRORS,
    OpsetConversionError,
    OptionError,
    PipelineError,
    QuantizeError,
    first_line,
)
from graphopt.ir import Graph, load_model
from graphopt.ir.model_io import (
    IR_NEEDS_INPUTS_FOR_INITIALIZERS,
    LoadedModel,
    ModelLike,
    is_stream,
    weights_as_constants,
)
from graphopt.ir.model_io import load as load_loaded
from graphopt.ir.nodes import default_opset
from graphopt.ir.opset_conversion import convert_opset
from graphopt.quant import cache as cache_io
from graphopt.quant import sidecar as sidecar_io
from graphopt.quant.collect import Feed, choose_samples, collect
from graphopt.quant.histogram import ENTROPY_FLOOR_PERCENTILE, METHODS, HistogramCalibrator
from graphopt.quant.placement import COMPUTE_OPS, TARGETS, Plan, plan
from graphopt.quant.qdq import (
    FLOAT16_QDQ_OPSET,
    REDUCED_WEIGHT_MAX,
    ActivationQuant,
    has_float16,
    insert_qdq,
)
from graphopt.quant.samples import SampleKeeper

log = logging.getLogger("graphopt.quant")

# Values of each activation histogrammed per input (per batch item). Histogramming every value
# costs more than the FP32 inference itself (ppocr_det at 640×640: 106 M activation values per
# image, ~3.5 ns each in numpy); 65536 sampled values per tensor and image moved the text detector's mask IoU
# by less than 0.02 under entropy and percentile calibration and cut calibration time 2.6×.
DEFAULT_HISTOGRAM_SAMPLE = 1 << 16

# Default `accuracy_target` (RMS output error over the FP32 output's range, on the sample feeds;
# a classifier's class probabilities: the largest change of any probability, `default_metric`):
# a fully quantized model that misses it gets its worst groups (`sensitivity.local_scores`) kept
# float. Measured (benchmarks/results/quantize.md): common_det at max calibration errs
# 0.015–0.038 and keeps 0.971 of the FP32 boxes, so nothing is float there; ppocr_det errs
# 0.09–0.10 (mask IoU 0.73) and keeps 0.925 with the 17 groups the search floats at 0.04 on the
# samples chosen by content (run 12; at 0.05 a search stopped at 5 groups and 0.888).
DEFAULT_ACCURACY_TARGET = 0.04
# Default calibration: the calibration maximum. Every clipping rule measured (KL, KL with a
# percentile floor, percentiles, MSE, 0.9–0.98 × max) lost FP32 boxes on common_det's views the
# calibration did not see (its early SiLU outputs' strongest responses are the signal), and no
# per-tensor statistic told those tensors apart from the ones where clipping helps; the precision
# the maximum costs (ppocr_det) is bought back by the accuracy target's float groups instead.
DEFAULT_METHOD = "minmax"


@dataclass
class QuantizeReport:
    """What `quantize` did: timings, scales, sensitivity ranking, groups kept in float."""

    target: str
    method: str
    feeds: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    scales: dict[str, np.float32] = field(default_factory=dict)  # tensor → amax/127
    quantized_nodes: list[str] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)  # (node, error) worst first
    kept_float: list[str] = field(default_factory=list)
    stem: list[str] = field(default_factory=list)  # stem convolutions kept float (keep_stem)
    error: float | None = None  # output error vs FP32 on the samples (`default_metric`)
    sidecar: str | None = None  # the cache sidecar whose float choices this run applied
    reduce_range: bool = False  # int8 weights in [-64, 64] (7 bits), not [-127, 127]
    # tensors no int8 scale represents, which get no Q/DQ and no cache entry: those holding
    # NaN or infinity in calibration → where (e.g. "-inf in calibration feed 0"); the others
    # (`parameters`: empty in every feed; from_cache: a cache scale under the least one
    # written) → why; and the nodes that would have quantized them, kept float
    non_finite: dict[str, str] = field(default_factory=dict)
    unscaled: dict[str, str] = field(default_factory=dict)
    unscaled_nodes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        feeds = (  # scales from a cache: the feeds only chose the accuracy search's samples
            (
                f"{counted(self.feeds, 'feed')} read for the accuracy search's samples"
                if self.feeds
                else "no feeds (no accuracy search)"
            )
            if self.method.startswith("from cache")
            else counted(self.feeds, "calibration feed")
        )
        out = [
            f"target {self.target}, method {self.method}, {feeds}, "
            f"{counted(len(self.quantized_nodes), 'quantized node')}, "
            f"{counted(len(self.scales), 'calibrated tensor')}"
            + (", int8 weights in [-64, 64] (reduce_range)" if self.reduce_range else ""),
            "time: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items()),
        ]
        if self.error is not None:
            measure = "RMS / range; class probabilities: largest change"
            out.append(f"output error vs FP32 ({measure}): {self.error:.4g}")
        if self.sensitivity:
            out.append(
                "most sensitive groups (ranking local: estimated share of the squared output "
                "error; full: output error with only that group quantized):"
            )
            out.extend(f"  {n}: {e:.4g}" for n, e in self.sensitivity[:10])
        if self.stem:
            out.append("stem kept in float: " + ", ".join(self.stem))
        if self.kept_float:
            out.append("kept in float: " + ", ".join(self.kept_float))
        if self.unscaled_nodes:
            out.append(
                "kept in float (no int8 scale for a tensor they read or write: NaN or infinity, "
                "empty in every feed, or under the least scale): " + ", ".join(self.unscaled_nodes)
            )
        if self.sidecar:
            what = "stem, keep_nodes" + ("" if self.sensitivity else ", accuracy search")
            out.append(f"float choices ({what}) from {self.sidecar}")
        return out


def quantize(
    model: ModelLike,
    calibration_data: Iterable[Feed] | None = None,
    method: str = DEFAULT_METHOD,
    cache: str | Path | None = None,
    target: str = "tensorrt",
    *more: Any,
    **options: Any,
) -> onnx.ModelProto:
    """Quantize `model` to INT8 with explicit QuantizeLinear/DequantizeLinear nodes.

    `calibration_data`: iterable of feed dicts `{input_name: array}` (not needed with
    `from_cache`). `method`: `minmax` (the default: amax = the calibration max|x|, see
    `DEFAULT_METHOD`), `entropy` (TensorRT EntropyCalibration2, floored at the
    `entropy_floor` percentile; the cache header names EntropyCalibration2, the algorithm
    TensorRT checks it against), `percentile`, `mse`.
    `cache`: write a TensorRT calibration cache there (as TensorRT writes one), and beside it
    its sidecar `<cache>.graphopt.json` (`graphopt.quant.sidecar`: the nodes kept float, the
    uint8 zero points of target `onnxruntime`, the float model's digest: the same for a path
    and the ModelProto loaded from it, weights inline or in external data), which `from_cache`
    reads to make the same model again; none beside a stream (/dev/stdout). The two are
    written as a pair: when the sidecar cannot be written the cache is put back. `target`:
    `tensorrt` (int8 symmetric activations, zero point 0) or `onnxruntime` (uint8 asymmetric
    activations, int32 bias).

    Options: `from_cache` (read scales from a TensorRT calibration cache instead of
    calibrating, and from its sidecar, when there, what the run that wrote it kept float: the
    stem (unless `keep_stem` is given), its `keep_nodes` (added to these) and its accuracy
    search's groups (unless a search runs here, on `calibration_data`, or none may:
    `accuracy_target=None`, `keep_float=0`), so the same float model
    gives the same model without calibrating; a sidecar written for another model, beside a
    cache of other scales, for another target or after another `pipeline` (its YAML file's
    bytes, `sidecar.pipeline_identity`) is not applied (one warning), a damaged one or
    one naming nodes the model lacks is a QuantizeError; a `cache` written then names that
    cache's calibrator, not `method`'s (`method`, and `percentile`, `entropy_floor`,
    `histogram_sample` and `parallel_feeds` other than their defaults, are refused with it:
    they calibrate, and nothing is calibrated); when a
    sensitivity search runs on samples from `calibration_data`, all of it is still read and run
    through the FP32 model once, to choose them by content), `percentile` (default 99.99), `entropy_floor` (`entropy` never clips more
    than this percentile of |x| would, default 99.99; None: TensorRT's bare KL threshold; see
    `HistogramCalibrator.compute_amax` for why detectors need it), `keep_float` (N most sensitive groups stay
    float), `accuracy_target` (largest output error vs FP32 on the sample feeds, RMS over the FP32
    output's range, or for a classifier's class probabilities the largest change of any
    probability, `sensitivity.default_metric`; the most sensitive groups are kept float until it holds; default
    `DEFAULT_ACCURACY_TARGET` = 0.04, None: off), `ranking` (how groups are ranked: `local`, the
    default, one measuring run on the sample feed whose outputs vary most,
    `graphopt.quant.local_error`; `full`, one run per group and feed), `keep_nodes` (names of nodes kept float, as the optimized model names
    them: an unknown name is a QuantizeError), `keep_stem` (the convolutions
    before the first downsampling stay float, `graphopt.quant.stem`; default: True for target
    `tensorrt`, whose symmetric int8 activations cost the stem the most), `sample_feeds`
    (calibration inputs kept for sensitivity, default 2: those whose FP32 outputs vary most, the
    smallest content digest breaking ties, `graphopt.quant.samples`; a feed stacking B inputs
    on a free batch dim is B candidates, `collect.ItemOffers`; so the same inputs in any order
    or batching give the same samples and the same model), `pipeline` (optimize pipeline; False skips it),
    `sensitivity_data` (feeds to measure sensitivity on instead, used as given),
    `error_metric` (callable(fp32_outputs, int8_outputs) → error, lists of output dicts per
    sample feed; default: `sensitivity.default_metric`, RMS error over the FP32 output's range
    or the largest change of a class probability),
    `histogram_sample` (histogram at most about this many values of each tensor per input
    stacked in a feed, by a fixed prime stride through each, default 65536; 0: every value; min
    and max are always exact; the inputs stacked on a free first dim are sampled one by one,
    so batching the same inputs otherwise gives the same histograms, `collect.batch_items`),
    `reduce_range` (int8 weights in [-64, 64] at s = max|W_c| / 64, 7 bits, as onnxruntime's
    `quantize_static(..., reduce_range=True)` makes them; activations and the cache's scales
    are as without it: for x86 CPUs without VNNI (AVX2, AVX-512 BW), whose onnxruntime u8·s8
    kernels add two products in 16 bits and saturate on full-range weights at
    ORT_ENABLE_EXTENDED and ALL, `backends.onnxruntime.fused_int8_conv_problem`; costs a bit
    of weight precision everywhere. Default: off, or with `from_cache` what its applied
    sidecar recorded), `trt_version` (TensorRT version for the cache header, e.g. "10.3.0",
    checked as
    `graphopt quantize --trt-version` is; with `cache` only; default: that of the
    `from_cache` cache, else the installed one, else 8.6.1), `threads` (onnxruntime intra-op threads, 0: as many as the cores),
    `parallel_feeds` (`minmax` calibration: feeds run at once on the probe session, sharing
    the threads; 2 keeps two cores busy through onnxruntime's single-threaded reductions,
    ppocr_det calibration 3.3 → 2.5 s, with a second feed's activations alive; default 1: one
    batch of activations alive at a time), `on_batch` (callback(count)
    per feed: 0 when the model is loaded, then after each calibration feed, or with
    `from_cache` after each feed run to choose the samples).

    An argument of another type, an option it does not take, one the run would ignore or a
    positional argument past `target` is an `OptionError` naming it (`quantize_with_report`),
    before anything is loaded.
    """
    refuse_extra_positionals("quantize", more, POSITIONALS)
    unknown = {k: v for k, v in options.items() if k not in QUANTIZE_OPTIONS}
    refuse_unknown_options("quantize", unknown, ARGUMENTS)
    return quantize_with_report(model, calibration_data, method, cache, target, **options)[0]


def quantize_with_report(
    model: ModelLike,
    calibration_data: Iterable[Feed] | None = None,
    method: str = DEFAULT_METHOD,
    cache: str | Path | None = None,
    target: str = "tensorrt",
    *more: Any,
    from_cache: str | Path | None = None,
    percentile: float = 99.99,
    entropy_floor: float | None = ENTROPY_FLOOR_PERCENTILE,
    keep_float: int = 0,
    accuracy_target: float | None = DEFAULT_ACCURACY_TARGET,
    ranking: str = "local",
    keep_nodes: Iterable[str] = (),
    keep_stem: bool | None = None,
    reduce_range: bool | None = None,
    sample_feeds: int = 2,
    sensitivity_data: list[Feed] | None = None,
    trt_version: str | None = None,
    error_metric: Callable[[list[Feed], list[Feed]], float] | None = None,
    histogram_sample: int = DEFAULT_HISTOGRAM_SAMPLE,
    pipeline: str | os.PathLike[str] | bool | None = None,
    threads: int = 0,
    parallel_feeds: int = 1,
    on_batch: Callable[[int], None] | None = None,
    on_search: Callable[[int], None] | None = None,
    **others: Any,
) -> tuple[onnx.ModelProto, QuantizeReport]:
    """`quantize`, also returning a `QuantizeReport`. `on_search`: called with 0 when the
    sensitivity search (keep_float / accuracy_target) starts, then with the number of candidate
    models measured so far after each (the search's length is not known ahead).

    An argument of the wrong type (`cache=123`, `accuracy_target="x"`, `keep_nodes="conv1"`),
    a sixth positional argument (the options go by name), an option it does not take
    (`foo=1`) or one the run would ignore (`method`, `percentile`,
    `entropy_floor`, `histogram_sample` or `parallel_feeds` other than its default with
    `from_cache`, or for another method; `trt_version` without `cache`) is an `OptionError`
    naming it, raised before anything is loaded or calibrated."""
    refuse_extra_positionals("quantize_with_report", more, POSITIONALS)
    refuse_unknown_options("quantize_with_report", others, ARGUMENTS)
    if method not in METHODS:
        raise QuantizeError(
            f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}"
        )
    if target not in TARGETS:
        raise QuantizeError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    pipeline = check_arguments(
        calibration_data,
        cache,
        from_cache=from_cache,
        percentile=percentile,
        entropy_floor=entropy_floor,
        keep_float=keep_float,
        accuracy_target=accuracy_target,
        keep_nodes=keep_nodes,
        keep_stem=keep_stem,
        reduce_range=reduce_range,
        sample_feeds=sample_feeds,
        sensitivity_data=sensitivity_data,
        trt_version=trt_version,
        error_metric=error_metric,
        histogram_sample=histogram_sample,
        pipeline=pipeline,
        threads=threads,
        parallel_feeds=parallel_feeds,
        on_batch=on_batch,
        on_search=on_search,
    )
    from graphopt.quant.sensitivity import check_ranking

    check_ranking(ranking)  # before calibrating, and even when no search runs
    if calibration_data is None and from_cache is None:
        raise QuantizeError("give calibration data or a calibration cache (from_cache)")
    check_values(  # before calibrating
        method,
        percentile=percentile,
        entropy_floor=entropy_floor,
        keep_float=keep_float,
        accuracy_target=accuracy_target,
        histogram_sample=histogram_sample,
        parallel_feeds=parallel_feeds,
    )
    refuse_ignored_options(
        method,
        from_cache,
        percentile=percentile,
        entropy_floor=entropy_floor,
        histogram_sample=histogram_sample,
        parallel_feeds=parallel_feeds,
    )
    if cache is not None and not is_stream(Path(cache)):
        sidecar_io.refuse_unwritable(cache)  # before calibrating, not once the model is made
    report = QuantizeReport(target, method)
    clock = time.perf_counter()
    digest = None  # of the float model, for the cache's sidecar (`graphopt.quant.sidecar`)
    if cache is not None or from_cache is not None:
        loaded = load_loaded(model)  # loaded once: prepare takes it as it is
        if cache is not None:
            _refuse_cache_over_read_files(
                cache, loaded.source, loaded.data_files, from_cache, pipeline
            )
        digest = sidecar_io.model_digest(loaded.model)
        # (before prepare, which may change it) the digest the first sidecars hold, initializers
        # in file order: `digest` itself where the file has them in name order
        file_order = sidecar_io.file_order_digest(loaded.model, digest) if from_cache else None
        proto = prepare(loaded, target, pipeline)
    else:
        proto = prepare(model, target, pipeline)
    report.seconds["optimize"] = time.perf_counter() - clock
    check(proto, model, "optimized")  # before calibrating, not after

    graph = Graph(proto)
    placement = plan(proto, target, graph)
    fused_ops = _onnxruntime_ops_warning(proto)
    if not placement.nodes:
        raise QuantizeError(
            f"nothing to quantize: {fused_ops}" if fused_ops else _nothing_to_quantize(proto)
        )
    if fused_ops:
        log.warning("%s", fused_ops)
    fixed_float = set(keep_nodes)
    asked_float = sorted(fixed_float)  # keep_nodes, which may be an iterator
    unknown = sorted(n for n in fixed_float if n not in graph.nodes)
    in_bodies = _body_node_names(proto).intersection(unknown)
    for name in sorted(in_bodies):  # float already: what was asked holds
        log.warning(
            "keep_nodes: %r is a node inside an If/Loop/Scan body, which quantize does not "
            "reach: it stays float",
            name,
        )
    unknown = [n for n in unknown if n not in in_bodies]
    if unknown:  # a name that matches nothing would leave its node quantized without a word
        raise QuantizeError(
            f"keep_nodes: no node named {unknown[0]!r} in the model as optimized for "
            "quantization (fusions remove nodes: a BatchNormalization folded into its Conv is "
            "gone, the Conv keeps its name; a fused activation chain takes its last node's "
            "name); name nodes as `graphopt optimize` writes them, or pass pipeline=False"
        )
    tensors = placement.calibrated(graph)
    # (before calibrating: the cache's writer refused such a name once the model was made)
    unwritable = [t for t in tensors if cache is not None and not cache_io.writable_name(t)]
    if unwritable:
        raise QuantizeError(
            f"tensor {cache_io.shown(unwritable[0])} cannot be named in a calibration cache "
            "(its name breaks the line); rename it, or quantize without a cache"
        )
    cache_text = None
    side = None  # the sidecar of `from_cache` applied: the float choices of the run that wrote it
    side_note = None  # why a sidecar beside `from_cache` was not applied
    if from_cache is not None:  # read first: a bad cache's error comes before the sidecar's
        cache_text = cache_io.read_text_file(from_cache, "calibration cache")
        source_header, scales = cache_io.loads(cache_text, str(from_cache))
        assert digest is not None
        side, side_note = _sidecar_for(
            from_cache,
            cache_text,
            scales,
            (digest, file_order),
            target,
            graph,
            tensors,
            sidecar_io.pipeline_identity(_pipeline_named(pipeline), target),
        )
    if side is not None and keep_stem is None:  # the stem as the writing run chose it
        report.stem = list(side.stem)
        fixed_float |= set(report.stem)
    elif keep_stem if keep_stem is not None else target == "tensorrt":
        from graphopt.quant.stem import stem_nodes

        report.stem = [n for n in stem_nodes(graph) if n in placement.nodes]
        fixed_float |= set(report.stem)
    # 7-bit weights: as asked, else as the run that wrote the applied sidecar had them (its
    # search chose its float groups for those weights), else off
    report.reduce_range = bool(
        reduce_range if reduce_range is not None else side is not None and side.reduce_range
    )
    if report.reduce_range:  # (the search's models too: they are made from the plan)
        placement.weight_max = REDUCED_WEIGHT_MAX
    samples: list[Feed] = []
    reference: list[Feed] | None = None  # FP32 outputs of the samples, from the calibration run
    sensitivity = bool(keep_float) or accuracy_target is not None
    scales_only = False  # said once the cache has been read: a bad cache's error comes alone
    if sensitivity and calibration_data is None and sensitivity_data is None and not keep_float:
        sensitivity = False  # nothing to measure on: the (default) accuracy target is skipped
        scales_only = True
    kept_nodes = sorted({n for n in asked_float if n in graph.nodes})  # the sidecar's keep_nodes
    search_nodes: set[str] = set()  # the accuracy search's float nodes (the sidecar's)
    if side is not None:
        fixed_float |= set(side.keep_nodes)
        kept_nodes = sorted(set(kept_nodes) | set(side.keep_nodes))
        # the writing run's search choices stand in for a search; a search that runs (feeds
        # given) chooses afresh: on top of them it went on past where the writing run stopped
        # (ppocr_det: 39 nodes quantized instead of 51 with the same feeds); a search turned
        # off (accuracy_target=None, keep_float=0: `--accuracy-target 0`) keeps nothing float
        # for accuracy, the sidecar's choices included
        if scales_only:
            fixed_float |= set(side.search_nodes)
            search_nodes = set(side.search_nodes)
            report.kept_float = list(side.search_groups)
        report.sidecar = str(sidecar_io.path_of(from_cache))  # type: ignore[arg-type]
    # calibration feeds kept for the sensitivity search (none when it does not run), chosen by
    # content (`graphopt.quant.samples`), so that the feeds' order does not change the model;
    # a classifier's by how far its class probabilities move (`sensitivity.sample_key`)
    from graphopt.quant.sensitivity import sample_key

    keep_samples = sample_feeds if sensitivity and sensitivity_data is None else 0
    keeper = SampleKeeper(keep_samples, sample_key(proto))
    clock = time.perf_counter()
    source_algorithm = None  # the calibrator of the cache the scales come from
    source_version = None  # and the TensorRT version it names
    if from_cache is not None:
        source_algorithm = cache_io.header_algorithm(source_header)
        source_version = cache_io.header_version(source_header)
        # the scales are the cache's: its calibrator chose them, not `method`
        report.method = f"from cache ({source_algorithm or source_header})"
        # the nodes kept float (keep_nodes, the stem) read no Q/DQ: their inputs need none
        kept = side.activations if side is not None else {}  # uint8 zero points and scales
        planned = placement.tensors(graph, fixed_float)
        missing = [t for t in planned if t not in scales and t not in kept]
        if missing:
            spaced = cache_io.spaced_name(from_cache, set(missing))
            if spaced is not None:  # ('  x: ...', an indented line: read as tensor '  x')
                raise QuantizeError(spaced)
            zero = cache_io.listed_without_scale(from_cache).intersection(missing)
            why = (
                f" ({len(zero)} of them listed with scale 0: TensorRT found no range for them; "
                "keep those nodes float with keep_nodes)"
                if zero
                else ""
            )
            if side_note is not None:  # (another target's or pipeline's cache: it says so)
                why += f" ({sidecar_io.path_of(from_cache)}: {side_note})"
            elif side is None and not zero:
                # graphopt's own cache leaves out the tensors it found no scale for, and the
                # sidecar names the nodes reading them, which stayed float (`parameters`)
                why += (
                    " (graphopt leaves a tensor without a scale, holding NaN or infinity or "
                    "empty in every calibration feed, out of its cache and keeps its readers "
                    f"float, as the sidecar {sidecar_io.path_of(from_cache)} says, which is not "
                    "there: "
                    "put it beside the cache, or keep those nodes float with keep_nodes)"
                )
            raise QuantizeError(
                f"{from_cache}: no scale for {len(missing)} tensor(s) the model quantizes, "
                f"e.g. {(sorted(zero) or missing)[0]!r}{why}"
            )
        params = {
            t: (
                ActivationQuant.symmetric(s)
                if target == "tensorrt"
                else ActivationQuant(s, 128, np.uint8)
            )
            for t, s in scales.items()
        }
        for t, (s, point) in kept.items():  # as the writing run had them (target onnxruntime)
            params[t] = ActivationQuant(s, point, np.uint8)
        report.scales = {t: scales[t] for t in tensors if t in scales}
        # a scale under ActivationQuant's floor (TensorRT's calibrator writes what it measured)
        # would be raised to it: the model's scale no longer the cache's, its values rounded
        # to 0 or a few steps
        floored = {
            t: f"cache scale {float(scales[t]):.3g} under the least scale written, "
            f"{float(params[t].scale):.3g}"
            for t in planned
            if t in scales and t not in kept and params[t].scale > scales[t]
        }
        if floored:
            report.unscaled.update(floored)
            report.unscaled_nodes = _keep_unscaled_float(
                floored, placement, graph, fixed_float, ("has", "have"), "no int8 scale"
            )
            fixed_float |= set(report.unscaled_nodes)
        if calibration_data is not None and keep_samples:
            # every feed is read and run: the samples are chosen by content, not by position
            report.feeds = choose_samples(proto, calibration_data, keeper, threads, on_batch)
            samples, reference = keeper.feeds, keeper.references
    else:
        assert calibration_data is not None
        calibrators, report.feeds = collect(
            proto,
            tensors,
            calibration_data,
            threads=threads,
            on_batch=on_batch,
            histograms=method != "minmax",
            sample_cap=histogram_sample,
            samples=keeper,
            same_scale=placement.share,
            in_flight=parallel_feeds,
            non_finite=report.non_finite,
        )
        samples, reference = keeper.feeds, keeper.references
        if report.non_finite:
            nodes = _keep_unscaled_float(
                report.non_finite,
                placement,
                graph,
                fixed_float,
                ("holds", "hold"),
                "NaN or infinity in calibration",
                refuse_empty=True,
            )
            report.unscaled_nodes += nodes
            fixed_float |= set(nodes)
        params, report.scales = parameters(
            calibrators,
            placement,
            target,
            method,
            percentile,
            entropy_floor,
            unscaled=report.unscaled,
        )
        if report.unscaled:
            nodes = _keep_unscaled_float(
                report.unscaled, placement, graph, fixed_float, ("has", "have"), "no int8 scale"
            )
            report.unscaled_nodes = sorted(set(report.unscaled_nodes) | set(nodes))
            fixed_float |= set(nodes)
    report.seconds["calibrate"] = time.perf_counter() - clock
    # (into the sidecar's keep_nodes: a from_cache run keeps them float too, the cache having
    # no scale for their tensors)
    kept_nodes = sorted(set(kept_nodes) | set(report.unscaled_nodes))

    clock = time.perf_counter()
    if sensitivity:
        if sensitivity_data is not None:
            samples = list(sensitivity_data)
        if not samples:
            raise QuantizeError(
                "keep_float / accuracy_target need sample feeds to measure on: give "
                "sample_feeds >= 1 (calibration feeds kept) or sensitivity_data"
            )
        from graphopt.quant.sensitivity import choose_float_groups, default_metric

        metric = error_metric
        if on_search is not None:  # counting needs the measure the search would choose itself
            metric = _counted(error_metric or default_metric(proto), on_search)
            on_search(0)
        chosen, chosen_nodes, order, error = choose_float_groups(
            proto,
            placement,
            params,
            samples,
            fixed_float,
            keep_float,
            accuracy_target,
            threads,
            metric,
            ranking,
            reference if reference is not None and len(reference) == len(samples) else None,
        )
        report.sensitivity, report.error = order, error
        fixed_float |= set(chosen_nodes)
        search_nodes |= set(chosen_nodes)
        report.kept_float = chosen
    stayed_float: dict[str, str] = {}
    quantized = insert_qdq(proto, placement, params, fixed_float, stayed_float)
    for name, reason in stayed_float.items():
        log.warning("%s: node %r stays float", reason, name)
    report.quantized_nodes = [
        n for n in placement.nodes if n not in fixed_float and n not in stayed_float
    ]
    if not report.quantized_nodes:  # a float model back, which nothing else would say
        reasons = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("the stem (keep_stem)", report.stem),
                ("keep_nodes", asked_float),
                ("the accuracy search", report.kept_float),
                ("no int8 scale (NaN, infinity, empty or tiny)", report.unscaled_nodes),
                ("unquantizable", sorted(stayed_float)),
            )
            if names
        ]
        log.warning(
            "nothing was quantized: all %d planned nodes stayed float (%s)",
            len(placement.nodes),
            "; ".join(reasons) or "kept float",
        )
    report.seconds["sensitivity+qdq"] = time.perf_counter() - clock
    check(quantized, proto)
    if cache is not None:
        # scales read from a cache keep its calibrator's name and TensorRT version (unless
        # trt_version names another): TensorRT checks both
        header = cache_io.header(method, trt_version, source_algorithm, source_version)
        assert digest is not None
        _write_cache(
            cache,
            header,
            report,
            # (a cache read: its other tensors' lines too, which its TensorRT reads)
            cache_io.with_listed(cache_text, report.scales) if cache_text is not None else None,
            sidecar_io.Sidecar(
                model_sha256=digest,
                cache_sha256="",  # of the text written (`_write_cache`)
                target=target,
                pipeline=sidecar_io.pipeline_identity(_pipeline_named(pipeline), target),
                stem=list(report.stem),
                keep_nodes=kept_nodes,
                search_groups=list(report.kept_float),
                search_nodes=sorted(search_nodes),
                activations={
                    t: (params[t].scale, params[t].zero_point)
                    for t in report.scales
                    if t in params and params[t].dtype is np.uint8
                },
                reduce_range=report.reduce_range,
            ),
        )
    # Said once the model is made: before, a damaged cache's error (or any later one) was the
    # second line of an exit 2 (the CLI's one-line contract)
    if side_note is not None:
        log.warning(
            "%s: not applied, %s%s",
            sidecar_io.path_of(from_cache),  # type: ignore[arg-type]
            side_note,
            "; the nodes its run kept float are quantized too (no accuracy search without "
            "feeds: give --calib as well to rerun it)"
            if scales_only
            else "",
        )
    elif scales_only and side is None:
        # a cache holds scales only: the groups its run kept float are quantized now
        # (ppocr_det: 88 nodes quantized instead of 56, a larger error), which nothing else
        # would say
        log.warning(
            "%s holds scales only, and no sidecar (%s) says which groups the run that wrote it "
            "kept float: they are quantized too (no accuracy search without feeds); give "
            "calibration data (--calib) as well to rerun the search",
            from_cache,
            sidecar_io.path_of(from_cache),  # type: ignore[arg-type]
        )
    # the int8 model runs in the user's onnxruntime (target onnxruntime): one whose fused int8
    # kernels are wrong (FUSED_CONV_ISSUE; or without VNNI, saturated by full-range weights
    # and right with reduce_range's) runs it wrong. (The accuracy search measured at
    # ORT_ENABLE_BASIC there: `collect.run_outputs`.)
    if target == "onnxruntime":
        from graphopt.backends.onnxruntime import fused_int8_conv_problem, fused_int8_conv_remedy

        problem = fused_int8_conv_problem(placement.weight_max)
        if problem is not None:
            log.warning(
                "%s: the quantized model computes wrong in it at its default ORT_ENABLE_ALL; %s",
                problem,
                fused_int8_conv_remedy(placement.weight_max),
            )
    return quantized, report


# the options `quantize` and `quantize_with_report` take by name, and all their arguments
QUANTIZE_OPTIONS = (
    "from_cache",
    "percentile",
    "entropy_floor",
    "keep_float",
    "accuracy_target",
    "ranking",
    "keep_nodes",
    "keep_stem",
    "reduce_range",
    "sample_feeds",
    "sensitivity_data",
    "trt_version",
    "error_metric",
    "histogram_sample",
    "pipeline",
    "threads",
    "parallel_feeds",
    "on_batch",
    "on_search",
)
ARGUMENTS = ("calibration_data", "method", "cache", "target", *QUANTIZE_OPTIONS)
# what quantize and quantize_with_report take by position; the rest go by name
POSITIONALS = ("model", "calibration_data", "method", "cache", "target")

# options of calibration: a `from_cache` run calibrates nothing (the cache's calibrator chose its
# scales), and each method reads only some of them. Their defaults: a value other than that was
# given, and would be ignored (the CLI passes the defaults of the flags it was not given)
_CALIBRATION_DEFAULTS: dict[str, object] = {
    "method": DEFAULT_METHOD,
    "percentile": 99.99,
    "entropy_floor": ENTROPY_FLOOR_PERCENTILE,
    "histogram_sample": DEFAULT_HISTOGRAM_SAMPLE,
    "parallel_feeds": 1,
}
# the methods that read each option (the API's `check_values` and `graphopt quantize`'s
# `refuse_options_of_other_methods` refuse it with another method)
METHODS_READING = {
    "percentile": ("percentile",),
    "entropy_floor": ("entropy",),
    "histogram_sample": ("entropy", "percentile", "mse"),
    "parallel_feeds": ("minmax",),  # (the histogram methods run one feed at a time)
}


def check_arguments(
    calibration_data: object,
    cache: object,
    *,
    from_cache: object = None,
    percentile: object = 99.99,
    entropy_floor: object = ENTROPY_FLOOR_PERCENTILE,
    keep_float: object = 0,
    accuracy_target: object = DEFAULT_ACCURACY_TARGET,
    keep_nodes: object = (),
    keep_stem: object = None,
    reduce_range: object = None,
    sample_feeds: object = 2,
    sensitivity_data: object = None,
    trt_version: object = None,
    error_metric: object = None,
    histogram_sample: object = DEFAULT_HISTOGRAM_SAMPLE,
    pipeline: object = None,
    threads: object = 0,
    parallel_feeds: object = 1,
    on_batch: object = None,
    on_search: object = None,
) -> str | Path | bool | None:
    """An `OptionError` for a `quantize_with_report` argument of a type it does not take
    (each was a TypeError deep inside, or worse: `from_cache=5` read file descriptor 5,
    `keep_stem="no"` kept the stem, `pipeline=Path("p.yaml")` ran the default pipeline, a
    string of `keep_nodes` named its letters), or one the run would ignore; the `pipeline` to
    run (a path given as `os.PathLike`, as a `Path`: the file, never a built-in, as
    `load_pipeline` reads it). Ranges are `check_values`'."""

    def refuse(argument: str, takes: str, value: object) -> None:
        raise OptionError(f"{argument} must be {takes}, got {given_text(value)}")

    def feeds(argument: str, value: object) -> None:
        one = isinstance(value, Mapping)  # one feed, iterated as its input names
        if one or isinstance(value, str | bytes) or not isinstance(value, Iterable):
            hint = " (one feed: pass [feed])" if one else ""
            refuse(argument, f"an iterable of feeds, {{input name: array}} each{hint}", value)

    if calibration_data is not None:
        feeds("calibration_data", calibration_data)
    if sensitivity_data is not None:
        feeds("sensitivity_data", sensitivity_data)
    for argument, value, what in (
        ("cache", cache, "the path of the calibration cache to write"),
        ("from_cache", from_cache, "the path of a calibration cache to read"),
    ):
        if value is not None and not is_path(value):
            refuse(argument, f"{what} (a str or os.PathLike)", value)
    for argument, value, low in (
        ("keep_float", keep_float, 0),
        ("sample_feeds", sample_feeds, 0),
        ("histogram_sample", histogram_sample, 0),
        ("threads", threads, 0),
        ("parallel_feeds", parallel_feeds, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            refuse(argument, f"a whole number, {low} or more", value)
    if sample_feeds < 0:  # type: ignore[operator]
        raise OptionError(f"sample_feeds must be 0 or more, got {sample_feeds}")
    if threads < 0:  # type: ignore[operator]
        raise OptionError(f"threads must be 0 (as many as the cores) or more, got {threads}")
    for argument, value, takes in (
        ("percentile", percentile, "a number in (0, 100]"),
        ("entropy_floor", entropy_floor, "a number in (0, 100], or None"),
        ("accuracy_target", accuracy_target, "a number, 0 or more, or None (no search)"),
    ):
        optional = argument != "percentile"
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            refuse(argument, takes, value)
    if isinstance(keep_nodes, str | bytes) or not isinstance(keep_nodes, Iterable):
        refuse("keep_nodes", "a list of node names", keep_nodes)
    for argument, flag in (("keep_stem", keep_stem), ("reduce_range", reduce_range)):
        if flag is not None:  # (None: the default, or what from_cache's sidecar recorded)
            check_flag(argument, flag)
    for argument, value in (
        ("error_metric", error_metric),
        ("on_batch", on_batch),
        ("on_search", on_search),
    ):
        if value is not None and not callable(value):
            refuse(argument, "a function, or None", value)
    if pipeline is not None and not isinstance(pipeline, bool):  # True: as None
        if not is_path(pipeline):
            refuse(
                "pipeline",
                "a built-in pipeline's name, a YAML file's path, None or True (the target's "
                "default) or False (none)",
                pipeline,
            )
        if not isinstance(pipeline, str):  # (Path("default") ran the built-in 'default')
            pipeline = Path(os.fspath(pipeline))  # type: ignore[call-overload]
    if trt_version is not None:
        _check_trt_version(trt_version)
        if cache is None:  # (the CLI refuses --trt-version without --cache)
            raise OptionError(
                f"trt_version={trt_version!r} names the TensorRT of the cache's header; "
                "no cache is written: give cache"
            )
    return pipeline  # type: ignore[return-value]


def _pipeline_named(pipeline: str | Path | bool | None) -> str | bool | None:
    """`pipeline` as `sidecar.pipeline_identity` takes it, by a str: a `Path` (a file) whose
    text is a built-in's name as './name', which names no built-in (its sidecar recorded the
    built-in, and a later run compared the file's bytes with it)."""
    if not isinstance(pipeline, Path):
        return pipeline
    from graphopt.pipeline import builtin_pipelines

    text = str(pipeline)
    return os.path.join(os.curdir, text) if text in builtin_pipelines() else text


def refuse_ignored_options(
    method: str,
    from_cache: str | Path | None,
    *,
    percentile: float,
    entropy_floor: float | None,
    histogram_sample: int,
    parallel_feeds: int,
) -> None:
    """An `OptionError` for an option of calibration a run would ignore, given other than its
    default: any (`method` too) with `from_cache`, whose cache's calibrator chose the scales
    (`method="percentile"` was taken without a word), and one another method does not read
    (`percentile=99.9` with `minmax`), as `graphopt quantize` refuses those flags. After
    `check_values`: a value out of range is said as such."""
    given = {
        argument: value
        for argument, value in (
            ("method", method),
            ("percentile", percentile),
            ("entropy_floor", entropy_floor),
            ("histogram_sample", histogram_sample),
            ("parallel_feeds", parallel_feeds),
        )
        if value != _CALIBRATION_DEFAULTS[argument]
    }
    if from_cache is not None and given:  # (the CLI refuses --cache-in with --method etc.)
        argument = next(iter(given))
        source = f"this run takes its scales from from_cache={os.fspath(from_cache)!r}"
        if argument == "method":
            raise OptionError(
                f"method={method!r} calibrates calibration_data; {source}, which the "
                "calibrator its header names chose (leave method out)"
            )
        raise OptionError(f"{argument}={given[argument]!r} is an option of calibration; {source}")
    for argument, value in given.items():
        reading = METHODS_READING.get(argument, (method,))
        if method not in reading:
            raise OptionError(
                f"{argument}={value!r} is for method {' or '.join(map(repr, reading))}; this "
                f"run calibrates with {method!r}"
            )


def _check_trt_version(version: object) -> None:
    """An `OptionError` for a `trt_version` that is no version the cache's header reads as
    written (`graphopt quantize`'s own check of --trt-version: '10.x', '10..3', '1e3' and
    '10.100' were headed TRT-100000, TRT-100000, TRT-1000 and TRT-110000)."""
    if not isinstance(version, str):
        raise OptionError(
            f"trt_version must be a TensorRT version like '10.3.0' (a str), got {version!r}"
        )
    try:
        cache_io.refuse_loose_trt_version(version, "trt_version")
        cache_io.tensorrt_version_number(version)
    except QuantizeError as e:
        raise OptionError(str(e)) from None


def check_values(
    method: str,
    *,
    percentile: float = 99.99,
    entropy_floor: float | None = ENTROPY_FLOOR_PERCENTILE,
    keep_float: int = 0,
    accuracy_target: float | None = DEFAULT_ACCURACY_TARGET,
    histogram_sample: int = DEFAULT_HISTOGRAM_SAMPLE,
    parallel_feeds: int = 1,
    flags: bool = False,
) -> None:
    """`QuantizeError` for a `quantize_with_report` value out of its range (`percentile` and
    `entropy_floor` only where `method` reads them), named as the argument (`keep_float`), or
    with `flags` as `graphopt quantize`'s flag (`--keep-float`): the command line checks its
    values here before it loads anything, so that its user reads the flag they gave."""

    def name(argument: str) -> str:
        return "--" + argument.replace("_", "-") if flags else argument

    for argument, value in (("histogram_sample", histogram_sample), ("keep_float", keep_float)):
        if value < 0:
            raise QuantizeError(f"{name(argument)} must be 0 or more, got {value}")
    if accuracy_target is not None and not accuracy_target >= 0.0:  # NaN too
        raise QuantizeError(f"{name('accuracy_target')} must be 0 or more, got {accuracy_target}")
    if parallel_feeds < 1:
        raise QuantizeError(f"{name('parallel_feeds')} must be 1 or more, got {parallel_feeds}")
    for argument, pct, used in (
        ("percentile", percentile, method == "percentile"),
        ("entropy_floor", entropy_floor, method == "entropy"),
    ):
        if used and pct is not None and not 0.0 < pct <= 100.0:
            # (the flag's 0 is the argument's None: TensorRT's bare threshold)
            off = (
                " (or 0: TensorRT's plain threshold)"
                if flags and argument == "entropy_floor"
                else ""
            )
            raise QuantizeError(f"{name(argument)} must be in (0, 100]{off}, got {pct}")


def _sidecar_for(
    cache: str | Path,
    cache_text: str,
    scales: dict[str, np.float32],
    digests: tuple[str, str | None],
    target: str,
    graph: Graph,
    tensors: Iterable[str],
    pipeline: tuple[str, str],
) -> tuple[sidecar_io.Sidecar | None, str | None]:
    """(the sidecar of `cache` to apply, None; why a sidecar there is not applied, None).
    `digests`: the float model's `model_digest` and `file_order_digest`; `pipeline`: the
    run's `sidecar.pipeline_identity`.

    A damaged sidecar is a `QuantizeError` (`sidecar.read`); one written for another model,
    beside another cache, for another target or after another optimize pipeline is not
    applied (the caller warns); one naming a node or tensor the model as optimized lacks
    (another graphopt's optimize, an older sidecar's other --pipeline, an edit) is a
    `QuantizeError`: its choices cannot be made on this model."""
    side = sidecar_io.read(cache)
    if side is None:
        return None, None
    tensors = set(tensors)
    quantized = {t: s for t, s in scales.items() if t in tensors}  # what the run read of it
    why = side.mismatch(
        digests[0],
        sidecar_io.text_sha256(cache_text),
        target,
        sidecar_io.scales_digest(quantized),
        file_order_sha256=digests[1],
        pipeline=pipeline,
    )
    if why is not None:
        return None, why
    where = sidecar_io.path_of(cache)
    unknown = sorted(n for n in side.float_nodes() if n not in graph.nodes)
    if unknown:
        raise QuantizeError(
            f"{where}: names node {sidecar_io.shown(unknown[0])}, which the model as optimized "
            f"for quantization does not have ({len(unknown)} such); quantize with the graphopt "
            "and --pipeline that wrote it, or delete the sidecar to take the cache's scales alone"
        )
    unknown = sorted(set(side.activations) - tensors)
    if unknown:
        raise QuantizeError(
            f"{where}: names tensor {sidecar_io.shown(unknown[0])}, which the model as "
            f"optimized for quantization does not quantize ({len(unknown)} such); delete the "
            "sidecar to take the cache's scales alone"
        )
    return side, None


def _refuse_cache_over_read_files(
    cache: str | Path,
    model: Path | None,
    data_files: Iterable[Path],
    from_cache: str | Path | None,
    pipeline: object = None,
) -> None:
    """A `QuantizeError` when the cache to write, or its sidecar, is a file the run reads: the
    model file, one of its external data files, `from_cache`'s sidecar, or a file of the
    `pipeline` YAML (`graphopt quantize` refuses the same paths): `quantize("m.onnx", feeds,
    cache="m.onnx")` wrote the cache over the model, once calibrated. None of them: a cache
    that is a stream (no sidecar either)."""
    if is_stream(Path(cache)):
        return
    read: list[tuple[str, str | Path | None]] = [("model", model)]
    read += [("model's external data", path) for path in data_files]
    if isinstance(pipeline, (str, os.PathLike)) and os.path.isfile(pipeline):
        from graphopt.pipeline import pipeline_files

        try:  # (its includes and rule files too)
            for role, file in pipeline_files(os.fspath(pipeline)):
                read.append(("pipeline" if role == "pipeline" else f"pipeline's {role}", file))
        except (OSError, ValueError, PipelineError):  # (prepare says why, later)
            read.append(("pipeline", os.fspath(pipeline)))
    side = sidecar_io.path_of(from_cache) if from_cache is not None else None
    # (the cache's sidecar over from_cache's: the same cache rewritten, and its sidecar)
    for what, path, also in (
        ("cache", cache, side),
        ("cache's sidecar", sidecar_io.path_of(cache), None),
    ):
        target = os.path.realpath(path)
        for source, other in [*read, ("from_cache sidecar", also)]:
            if other is not None and os.path.realpath(other) == target:
                raise QuantizeError(
                    f"cache={os.fspath(cache)!r}: the {what} {sidecar_io.shown(str(path))} is "
                    f"the {source} file this run reads; give another cache path"
                )


def _write_cache(
    path: str | Path,
    header: str,
    report: QuantizeReport,
    listed: dict[str, np.float32] | None,
    side: sidecar_io.Sidecar,
) -> None:
    """Write the calibration cache of `report.scales` (`listed`, when given: those and the
    other tensors of the cache they were read from, `cache.with_listed`) and its sidecar
    (`side`, completed with the cache's digest and graphopt's version), each atomically, the
    cache put back when the sidecar fails; none beside a cache that is a stream (a pipe,
    /dev/stdout): there is no folder to put it in."""
    scales = report.scales if listed is None else listed
    text = cache_io.dumps(scales, header)
    if is_stream(Path(path)):
        cache_io.write(path, scales, header)
        log.info("%s is a stream: no sidecar written beside it", path)
        return
    # the two as a pair: a sidecar that cannot be written (a full disk, Ctrl-C) puts the cache
    # back, so the pair on disk stays the old one (or none), never a new cache beside the
    # sidecar of the old
    side.cache_sha256 = sidecar_io.text_sha256(text)
    side.scales_sha256 = sidecar_io.scales_digest(report.scales)
    side.graphopt_version = sidecar_io.graphopt_version()
    # before the cache is written, not after: a folder or FIFO where the sidecar goes, a name
    # too long, more bytes than a sidecar holds
    sidecar_io.refuse_unwritable(path, side)
    before = cache_io.bytes_before(path)
    missing = cache_io.missing_folders(path)  # made by the cache's write: they go with it
    cache_io.write(path, scales, header)
    try:
        sidecar_io.write(path, side)
    except BaseException:
        cache_io.put_back(path, before, missing)
        raise


def _keep_unscaled_float(
    unscaled: dict[str, str],
    placement: Plan,
    graph: Graph,
    fixed_float: set[str],
    verb: tuple[str, str],
    problem: str,
    refuse_empty: bool = False,
) -> list[str]:
    """The planned nodes that would put a Q/DQ on a tensor of `unscaled` (tensor → why no int8
    scale represents it), which stay float; warned once, in one line ("2 tensors `verb`
    `problem`: ..."; `verb`: singular and plural). Only those tensors are left float, as
    `keep_nodes` leaves one, and the rest is quantized. With `refuse_empty`, a QuantizeError
    when that leaves nothing to quantize (every tensor the run would quantize holds NaN or
    infinity: the calibration data or the model is broken, and a float model back would hide
    it)."""
    nodes = sorted(
        name
        for name, p in placement.nodes.items()
        if any(graph.nodes[name].input[i] in unscaled for i in p.activations)
        or any(graph.nodes[name].output[i] in unscaled for i in p.outputs)
    )
    if refuse_empty and nodes and not set(placement.nodes) - fixed_float - set(nodes):
        tensor, where = next(iter(unscaled.items()))
        what, _, feed = where.rpartition(" in ")  # "-inf in calibration feed 3"
        raise QuantizeError(
            f"{feed}: tensor {tensor!r}: calibration values contain NaN or infinity ({what}), "
            "and so does every tensor left to quantize: check the calibration data"
        )
    shown = [f"{t!r} ({why})" for t, why in list(unscaled.items())[:5]]
    more = f" and {len(unscaled) - 5} more" if len(unscaled) > 5 else ""
    log.warning(
        "%s %s %s: %s%s; %s no Q/DQ (and no calibration cache entry), and %s",
        counted(len(unscaled), "tensor"),
        verb[len(unscaled) != 1],
        problem,
        ", ".join(shown),
        more,
        "it gets" if len(unscaled) == 1 else "they get",
        f"{counted(len(nodes), 'node')} stay{'s' * (len(nodes) == 1)} float "
        f"({', '.join(map(repr, nodes[:5]))}"
        f"{' ...' if len(nodes) > 5 else ''})"
        if nodes
        else "no node needs to stay float",
    )
    return nodes


def _counted(
    measure: Callable[[list[Feed], list[Feed]], float], on_measured: Callable[[int], None]
) -> Callable[[list[Feed], list[Feed]], float]:
    """`measure` calling `on_measured(count)` after each measurement: one per candidate model
    (or slice) the search runs."""
    count = 0

    def measure_and_count(reference: list[Feed], outputs: list[Feed]) -> float:
        nonlocal count
        value = measure(reference, outputs)
        count += 1
        on_measured(count)
        return value

    return measure_and_count


def _body_node_names(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes inside the If/Loop/Scan bodies of `model`'s main graph."""
    from graphopt.ir.nodes import nested_bodies

    return {node.name for body in nested_bodies(model.graph) for node in body.node}


def _nothing_to_quantize(model: onnx.ModelProto) -> str:
    """Why quantizing `model` would change nothing, naming compute ops its bodies hold."""
    from graphopt.ir.nodes import nested_bodies

    inside = sum(
        node.op_type in COMPUTE_OPS for body in nested_bodies(model.graph) for node in body.node
    )
    here = sum(node.op_type in COMPUTE_OPS for node in model.graph.node)
    if here:  # e.g. behind an op shape inference does not know: its input type is unknown
        return (
            f"nothing to quantize: none of the {here} Conv/ConvTranspose/Gemm/MatMul of the "
            "main graph reads a float activation of known type"
        )
    message = "nothing to quantize: the model has no Conv, ConvTranspose, Gemm or MatMul"
    if inside:
        message += (
            f" in its main graph ({inside} sit inside If/Loop/Scan bodies, which quantize "
            "does not reach)"
        )
    return message


def prepare(
    model: ModelLike, target: str, pipeline: str | Path | bool | None = None
) -> onnx.ModelProto:
    """The model quantization starts from: opset ≥ 13 (per-channel Q/DQ), ≥ 19 when float16
    appears in it (weights, Constants, casts: Q/DQ take float16 only from opset 19), optimized.
    Optimize's errors name the model as its load does (a path: the path)."""
    loaded = load_loaded(model)
    proto, where = loaded.model, loaded.where
    quantized = _quantized_ops(proto)
    if quantized:
        raise QuantizeError(
            f"the model is already quantized ({quantized}): quantize its float "
            "original (Q/DQ would be stacked on quantized tensors)"
        )
    version = default_opset(proto)
    needed = FLOAT16_QDQ_OPSET if has_float16(proto) else 13
    # before the upgrade, which raises the IR version to what the new opset needs
    if 0 < proto.ir_version < IR_NEEDS_INPUTS_FOR_INITIALIZERS:  # 0: unset, read as current
        weights_as_constants(proto)
    if version < needed:
        proto = upgrade_opset(proto, needed)
    _refuse_opset_without_qdq_kernels(max(version, needed))
    if target == "tensorrt":  # before optimizing: the input's own ops, said as such
        _refuse_ops_tensorrt_lacks(proto, "the model holds", "quantize the original model")
    if pipeline is False:
        return proto
    from graphopt.api import optimize

    def named(proto: onnx.ModelProto) -> LoadedModel:
        """A copy of `proto` for optimize to edit, as optimize(proto) loads it (its nodes are
        checked where optimize indexes them), its errors naming the model as it was given:
        a path's training_info refusal said 'the given ModelProto'."""
        return load_loaded(proto, check_nodes=False, where=where)

    if isinstance(pipeline, str | Path):  # (a Path: the file, as optimize reads it)
        optimized = optimize(named(proto), pipeline)
        if target == "tensorrt":  # e.g. ort-fusions' FusedConv/QuickGelu: 80 check errors
            _refuse_ops_tensorrt_lacks(
                optimized, f"pipeline {str(pipeline)!r} writes", "leave --pipeline at its default"
            )
        return optimized
    for name in ("tensorrt", "default") if target == "tensorrt" else ("default",):
        try:
            return optimize(named(proto), name)
        except PipelineError as e:
            log.warning("pipeline %r unavailable (%s); trying the next", name, e)
    log.warning("no optimize pipeline could run; quantizing the model as it is")
    return proto


def _quantized_ops(model: onnx.ModelProto) -> str:
    """The quantized ops (`_is_quantized_op`) `model` holds, and where when not in its main
    graph: "QuantizeLinear in an If/Loop/Scan body", "DequantizeLinear in local function
    local:F"; "" when none. A body's or a function's count as the main graph's do: their
    outputs are the tensors quantize would quantize again."""
    from graphopt.ir.nodes import nested_bodies, subgraphs

    def ops(nodes: Iterable[onnx.NodeProto]) -> str:
        return ", ".join(sorted({n.op_type for n in nodes if _is_quantized_op(n)}))

    found = ops(model.graph.node)
    if found:
        return found
    found = ops(n for body in nested_bodies(model.graph) for n in body.node)
    if found:
        return f"{found} in an If/Loop/Scan body"
    for function in model.functions:
        bodies = [g for node in function.node for g in subgraphs(node)]
        bodies += [inner for g in bodies for inner in nested_bodies(g)]
        found = ops([*function.node, *(n for g in bodies for n in g.node)])
        if found:
            where = f"{function.domain}:{function.name}" if function.domain else function.name
            return f"{found} in local function {escaped(where)}"
    return ""


def _refuse_opset_without_qdq_kernels(opset: int) -> None:
    """QuantizeError, before any calibration, where the installed onnxruntime runs no
    QuantizeLinear/DequantizeLinear at the model's `opset` (1.32 at opset 28): calibration
    would run, then the quantized model would load nowhere here (quantize itself runs it)."""
    from graphopt.backends.onnxruntime import qdq_runs

    if qdq_runs(opset):
        return
    import onnxruntime as ort

    lower = next((v for v in range(opset - 1, 12, -1) if qdq_runs(v)), None)
    advice = (
        f"convert the model to opset {lower} first (onnx.version_converter)"
        if lower is not None
        else "upgrade onnxruntime"
    )
    raise QuantizeError(
        f"onnxruntime {ort.__version__} has no QuantizeLinear/DequantizeLinear at opset "
        f"{opset}, the model's: {advice}"
    )


def _foreign_ops(model: onnx.ModelProto) -> dict[str, int]:
    """`domain::op` → count of the nodes (main graph and bodies) outside the default domain;
    ops of model-local functions excepted (inlined by parsers)."""
    from graphopt.ir.nodes import nested_bodies

    functions = {(f.domain, f.name) for f in model.functions}
    skip = {"", "ai.onnx"}
    counts: dict[str, int] = {}
    graphs = [model.graph, *nested_bodies(model.graph)]
    for node in (node for graph in graphs for node in graph.node):
        if node.domain not in skip and (node.domain, node.op_type) not in functions:
            key = f"{node.domain}::{node.op_type}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _ops_text(counts: dict[str, int]) -> str:
    """ "98 com.microsoft::FusedConv, 4 com.microsoft::QuickGelu", most first, at most 3."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{n} {op}" for op, n in ranked[:3])
    return text + (f" and {len(ranked) - 3} more op types" if len(ranked) > 3 else "")


def _onnxruntime_ops(model: onnx.ModelProto) -> dict[str, int]:
    """`_foreign_ops` of onnxruntime's own domains (com.microsoft, com.microsoft.nchwc)."""
    return {op: n for op, n in _foreign_ops(model).items() if op.startswith("com.microsoft")}


def _refuse_ops_tensorrt_lacks(model: onnx.ModelProto, what: str, instead: str) -> None:
    """QuantizeError for target tensorrt when `model` holds onnxruntime's own ops (an ort-*
    pipeline's FusedConv/QuickGelu, NCHWc Conv): no TensorRT parser or plugin runs them, and
    `check --target tensorrt` refused the quantized model (80 errors on ppocr_det). Other
    custom domains pass: TensorRT's parser finds a user's plugin by op name."""
    found = _onnxruntime_ops(model)
    if found:
        raise QuantizeError(
            f"--target tensorrt: {what} onnxruntime's own ops ({_ops_text(found)}), which "
            f"TensorRT cannot take: {instead} (an ort-* pipeline's fused ops run in "
            "onnxruntime only)"
        )


def _onnxruntime_ops_warning(model: onnx.ModelProto) -> str | None:
    """Why a model holding onnxruntime's fused ops (an ort-* pipeline's output) quantizes
    poorly, or None: they stay float, and shape inference knows no type behind them, so the
    Conv/MatMul they feed are not quantized either."""
    found = _onnxruntime_ops(model)
    if not found:
        return None
    return (
        f"the model holds onnxruntime's own fused ops ({_ops_text(found)}), which quantize "
        "leaves float, and behind which activation types are unknown: quantize the original "
        "model (before an ort-* pipeline) with quantize's default pipeline instead"
    )


_QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    }
)


# onnxruntime's own (com.microsoft) quantized ops beyond the QLinear*, QOrdered*, Quantize*,
# Dequantize* and DynamicQuantize* families (`_ORT_QUANTIZED_PREFIXES`): integer kernels and
# weights stored in int8 / 4 bits / blocks (onnxruntime 1.32's contrib schemas). A model
# holding them was quantized (MatMulNBits: onnxruntime's and Olive's 4-bit weight-only
# quantization), not fused by an ort-* pipeline. (QuickGelu, GroupQueryAttention: no.)
_ORT_QUANTIZED_OPS = frozenset(
    {
        "QGemm",
        "QAttention",
        "QEmbedLayerNormalization",
        "QMoE",
        "MatMulNBits",
        "MatMulNBitsMlp",
        "MatMulNBitsQLoRA",
        "MatMulNBitsQkv",
        "MatMulBnb4",
        "MatMulFpQ4",
        "MatMulBlockQuantizedFp4Weight",
        "MatMulBlockQuantizedFp8Weight",
        "MatMulInteger16",
        "MatMulIntegerToFloat",
        "MulInteger",
        "ReduceSumInteger",
        "GatherBlockQuantized",
    }
)
_ORT_QUANTIZED_PREFIXES = ("QLinear", "QOrdered", "DynamicQuantize", "Quantize", "Dequantize")


def _is_quantized_op(node: onnx.NodeProto) -> bool:
    """A node of a model that is quantized already (static Q/DQ, QOperator, dynamic, or one of
    onnxruntime's integer or block-quantized-weight kernels)."""
    if node.domain in ("", "ai.onnx"):
        return node.op_type in _QUANTIZED_OPS
    return node.domain == "com.microsoft" and (
        node.op_type in _ORT_QUANTIZED_OPS or node.op_type.startswith(_ORT_QUANTIZED_PREFIXES)
    )


def upgrade_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """`model` at default-domain opset `version` (`graphopt.ir.opset_conversion.convert_opset`),
    checked; QuantizeError when it cannot be converted, or when the conversion would change
    what the model computes (`misconverted`: a linear Upsample or Resize-10 would become a
    half_pixel Resize, a Hardmax whose input may hold a 0 dim would change meaning at opset 13):
    the quantized model would not compute the float one. A model with
    local functions, which the converter drops, is converted with them inlined
    (`_inline_functions`)."""
    count = len(model.functions)
    if count:
        model = _inline_functions(model, version)
    try:
        upgraded = convert_opset(model, version)
    except OpsetConversionError as e:
        problem = e.reason
        if e.kind == "local-functions":
            # (onnx's inliner leaves a call whose function imports another default opset)
            problem = (
                f"onnx.version_converter drops its {count} local function(s), and onnx's "
                f"inliner left {len(model.functions)} of them in place: convert the model "
                "yourself"
            )
        raise QuantizeError(f"cannot upgrade the model to opset {version}: {problem}") from e
    try:
        onnx.checker.check_model(upgraded)
    except Exception as e:  # onnx's checker raises assorted errors
        first = first_line(e)
        raise QuantizeError(f"cannot upgrade the model to opset {version}: {first}") from e
    return upgraded


def _inline_functions(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """`model` with its local functions inlined (a new model), for onnx.version_converter,
    which drops them (their calls would dangle): `multitask.functions.inline_keeping_placements`,
    as merge's conversion does, keeping the calls' device placements. QuantizeError where a
    called function is named as an op onnx or onnxruntime defines (com.microsoft:Gelu):
    onnxruntime runs its op for such a call, not the function, and inlined the function's
    body would run instead."""
    from graphopt.multitask.functions import all_nodes, inline_keeping_placements, runtime_has_op

    functions = {(f.domain, f.name, f.overload) for f in model.functions}
    called = {
        (node.domain, node.op_type)
        for node in all_nodes(model)
        if (node.domain, node.op_type, node.overload) in functions
    }
    shadowed = sorted(f"{d}:{name}" if d else name for d, name in called if runtime_has_op(d, name))
    if shadowed:
        raise QuantizeError(
            f"cannot upgrade the model to opset {version}: onnx.version_converter drops its "
            f"local functions, and inlining them would change what it computes: onnxruntime "
            f"runs its own op {escaped(shadowed[0])} for a call of the local function of that "
            "name; convert the model yourself"
        )
    try:
        return inline_keeping_placements(model)
    except Exception as e:  # the inliner raises untyped errors from C++
        raise QuantizeError(
            f"cannot upgrade the model to opset {version}: onnx.version_converter drops its "
            f"local functions, and onnx's inliner failed on them: {first_line(e)}"
        ) from e


def parameters(
    calibrators: dict[str, HistogramCalibrator],
    placement: Plan,
    target: str,
    method: str,
    percentile: float = 99.99,
    entropy_floor: float | None = ENTROPY_FLOOR_PERCENTILE,
    unscaled: dict[str, str] | None = None,
) -> tuple[dict[str, ActivationQuant], dict[str, np.float32]]:
    """Activation parameters per tensor and the cache scales (amax/127), groups shared.

    No scale exists for a tensor (its group) that was empty in every calibration feed (a
    second stage's rows that no calibration image selected): it took the least scale, 1e-12,
    and every value it held at inference quantized to ~0 (a MatMul behind it: output error
    58-84% of its range). With `unscaled`, such a tensor is recorded there (tensor → why) and
    left out of both results (`quantize` keeps it float); without, it takes the floor.

    A tensor whose values are not all 0 but whose scale is under that floor (max|x| under
    ~1.3e-10) still takes it, and its values quantize to 0 or a few steps (x·1e-30 before a
    Conv without bias: output error 63% of its range): tests/test_quant_review13b_bias_floor.py
    relies on x·1e-30 being quantized at the 1e-12 floor (there the bias dominates)."""
    amax = {t: c.compute_amax(method, percentile, entropy_floor) for t, c in calibrators.items()}
    group_amax: dict[str, float] = {}
    group_lo: dict[str, float] = {}
    group_hi: dict[str, float] = {}
    seen: set[str] = set()  # groups with a value in some feed
    for t, c in calibrators.items():
        g = placement.share.get(t, t)
        if c.maximum >= c.minimum:
            seen.add(g)
        group_amax[g] = max(group_amax.get(g, 0.0), amax[t])
        group_lo[g] = min(group_lo.get(g, 0.0), c.minimum if c.maximum >= c.minimum else 0.0)
        group_hi[g] = max(group_hi.get(g, 0.0), c.maximum if c.maximum >= c.minimum else 0.0)
    # readers' saturation bounds apply to a whole scale group or not at all (the members must
    # keep one scale): the group's bounds are the widest of its members', and a member without
    # bounds leaves the group unbounded
    group_bounds: dict[str, tuple[float, float] | None] = {}
    for t in calibrators:
        g = placement.share.get(t, t)
        b = placement.bounds.get(t)
        if g in group_bounds:
            prev = group_bounds[g]
            group_bounds[g] = (
                None if prev is None or b is None else (min(prev[0], b[0]), max(prev[1], b[1]))
            )
        else:
            group_bounds[g] = b
    params: dict[str, ActivationQuant] = {}
    scales: dict[str, np.float32] = {}
    for t in calibrators:
        g = placement.share.get(t, t)
        lo, hi = max(group_lo[g], -group_amax[g]), min(group_hi[g], group_amax[g])
        bounds = group_bounds[g]
        if bounds is not None:  # readers saturate outside these bounds
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        a = max(-lo, hi, 0.0)
        scale = np.float32(max(a / 127.0, 1e-12))  # a zero scale cannot be cached
        if target == "tensorrt":
            param = ActivationQuant.symmetric(scale)
        else:
            param = ActivationQuant.asymmetric(lo, hi)
        if unscaled is not None and g not in seen:
            unscaled[t] = "empty in every calibration feed"
            continue
        scales[t] = scale
        params[t] = param
    return params, scales


# (graphopt.errors.CHECKER_ERRORS: a plain ValueError for an element type 99 came out of
# quantize as a traceback)


def check(model: onnx.ModelProto, source: ModelLike | None = None, what: str = "quantized") -> None:
    """QuantizeError unless `model` passes `onnx.checker` (full check); when `source` (the model
    it was made from, loaded only then) fails too, the error says the input is the cause. Run
    on the optimized model before calibrating too (`what="optimized"`): a model that fails as
    given (PP-OCRv5 det declares a rank-0 output) cannot give a valid result."""
    try:
        full_check(model)
    except CHECKER_ERRORS as e:
        first = first_line(e)
        if source is not None:
            try:
                full_check(load_model(source))
            except CHECKER_ERRORS as s:
                raise QuantizeError(
                    f"the input model fails onnx.checker ({str(s).strip().splitlines()[0]}), "
                    "so its quantized model would too; fix the model first"
                ) from e
        raise QuantizeError(f"the {what} model fails onnx.checker: {first}") from e
