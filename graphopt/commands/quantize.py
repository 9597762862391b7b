"""`graphopt quantize IN -o OUT --calib DIR [--method M] [--target T] [--cache F]`.

Calibration data: a folder of `.npy`/`.npz` feeds or of images (with `--size`, `--letterbox`,
`--mean`, `--std`, `--scale`, `--bgr`, or `--preprocess spec.yaml`); or `--cache-in F` to take
scales from a TensorRT calibration cache instead of calibrating (and the nodes kept float from
its sidecar `F.graphopt.json`, which `--cache F` writes: `graphopt.quant.sidecar`). An image
option with no image to preprocess (a folder of arrays only, or `--cache-in` alone) is refused,
not ignored.

The output's folder (and the cache's) is checked before anything is loaded or calibrated, so a
typo in `-o` costs a second, not a calibration run; the model is written atomically at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from graphopt._text import counted, shown
from graphopt.commands._common import (
    STDOUT,
    Given,
    add_model_output,
    file_identity,
    output_name,
)
from graphopt.quant.progress import Progress

if TYPE_CHECKING:
    import onnx

    from graphopt.quant.data import FolderFeeds, PreprocessSpec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="INT8 post-training quantization to an explicit Q/DQ model",
        description="Calibrate activations over a folder of feeds or images (max by default, "
        "TensorRT entropy calibration, percentile or MSE), keep the most sensitive fusion "
        "groups float until an accuracy target holds, insert QuantizeLinear/DequantizeLinear "
        "for the deployment target, and write the model (and optionally a TensorRT "
        "calibration cache).",
    )
    p.add_argument("input", help="input .onnx file")
    add_model_output(p, "output .onnx file")
    p.add_argument("--calib", metavar="DIR", help="folder of .npy/.npz feeds or images")
    p.add_argument(
        "--cache-in",
        metavar="F",
        help="take scales from this TensorRT calibration cache, and the nodes kept float "
        "(stem, --keep-float, accuracy search) from its sidecar F.graphopt.json when there",
    )
    p.add_argument(
        "--method",
        default="minmax",
        choices=("entropy", "minmax", "percentile", "mse"),
        action=Given,
        help="calibration method: minmax (default: the calibration max|x|, with "
        "--accuracy-target), entropy (TensorRT EntropyCalibration2; use it for a --cache that "
        "an IInt8EntropyCalibrator2 deployment reads), percentile, mse",
    )
    # Given records the options given: one given to another method is refused, not ignored
    p.add_argument(
        "--percentile",
        type=float,
        default=99.99,
        action=Given,
        help="for --method percentile (default 99.99)",
    )
    p.add_argument(
        "--entropy-floor",
        type=float,
        default=99.99,
        action=Given,
        metavar="PCT",
        help="--method entropy never clips below this percentile of |x| (default 99.99; "
        "0: TensorRT's plain threshold)",
    )
    p.add_argument(
        "--histogram-sample",
        type=int,
        default=1 << 16,
        action=Given,
        metavar="N",
        help="--method entropy, percentile or mse: histogram about N values of each tensor per "
        "calibration file (default 65536; fixed stride through each file's values, so "
        "--batch-size does not change the histograms; 0: all values)",
    )
    p.add_argument(
        "--target",
        default="tensorrt",
        choices=("tensorrt", "onnxruntime"),
        help="Q/DQ layout: tensorrt (int8 symmetric; the default) or onnxruntime (uint8, "
        "QLinear fusions)",
    )
    p.add_argument(
        "--cache",
        metavar="F",
        help="write a TensorRT calibration cache here, and beside it F.graphopt.json (the "
        "nodes kept float, the model's digest: what --cache-in F needs to make the same model)",
    )
    p.add_argument(
        "--trt-version",
        metavar="X.Y.Z",
        help="TensorRT version named in the cache header (default: that of --cache-in, else "
        "the installed one, else 8.6.1)",
    )
    p.add_argument(
        "--size",
        metavar="HxW",
        help="resize --calib images to HxW, or N for NxN (default: the model's fixed size)",
    )
    p.add_argument(
        "--letterbox",
        action="store_true",
        help="keep the aspect ratio, pad to --size with 114 (default: stretch)",
    )
    p.add_argument(
        "--mean", help="per-channel mean, 1 or 3 comma-separated numbers, after --scale (default 0)"
    )
    p.add_argument("--std", help="per-channel std, 1 or 3 numbers (default 1)")
    p.add_argument(
        "--scale",
        type=float,
        help="pixel multiplier before --mean/--std (default 1: pixels 0..255; 0.00392 for 0..1)",
    )
    p.add_argument("--bgr", action="store_true", help="feed channels as BGR (default RGB)")
    p.add_argument(
        "--preprocess",
        metavar="YAML",
        help="preprocessing spec file: a mapping of size, letterbox, mean, std, scale, bgr, "
        "pad_value; the flags given win over it",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="N",
        help="files stacked per calibration batch (default 1; a model with a fixed batch B: B)",
    )
    p.add_argument(
        "--keep-float",
        type=int,
        default=0,
        metavar="N",
        help="keep the N most sensitive groups float (default 0)",
    )
    p.add_argument(
        "--accuracy-target",
        type=float,
        default=0.04,
        action=Given,
        metavar="ERR",
        help="keep the most sensitive groups float until the output error vs FP32 (RMS over the "
        "output's range; for a classifier's class probabilities, the largest change of any "
        "probability; on the two calibration files whose FP32 outputs vary most: any order "
        "or --batch-size of the same files gives the same model) is <= ERR (default 0.04; 0: "
        "off)",
    )
    p.add_argument(
        "--parallel-feeds",
        type=int,
        default=1,
        action=Given,
        metavar="N",
        help="minmax calibration: run N feeds at once (2 keeps two cores busy through "
        "onnxruntime's single-threaded reductions, with N feeds' activations alive; default 1)",
    )
    p.add_argument(
        "--keep-stem",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the convolutions before the first downsampling float (default: on for "
        "--target tensorrt, whose symmetric int8 costs the image-reading stem the most)",
    )
    p.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="int8 weights in 7 bits ([-64, 64], as onnxruntime's reduce_range): for x86 CPUs "
        "without VNNI, whose onnxruntime int8 Conv/MatMul kernels saturate on full-range "
        "weights at its default optimization level (default: off; with --cache-in, as its "
        "sidecar recorded)",
    )
    p.add_argument(
        "--pipeline",
        default=None,
        help="optimize pipeline run first, a built-in name or YAML file (default: tensorrt for "
        "--target tensorrt, default for onnxruntime)",
    )
    p.add_argument("--report", action="store_true", help="print timings and the sensitivity report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from graphopt.commands._common import (
        _data_file_beside,
        check_data_file_name,
        check_writable,
        given_options,
        refuse_image_options_without_images,
        refuse_model_path,
        refuse_writing_over_data_files,
        refuse_writing_over_input_data,
        refuse_writing_over_read_files,
        resolved,
        save_output,
    )
    from graphopt.commands.optimize import _pipeline_reads
    from graphopt.errors import QuantizeError
    from graphopt.ir import load
    from graphopt.ir.io_names import require_text_io_names
    from graphopt.ir.model_io import OLD_MODEL_PUT_BACK, is_stream
    from graphopt.quant import cache as cache_io
    from graphopt.quant.api import check_values, quantize_with_report
    from graphopt.quant.data import IMAGE_SUFFIXES, PreprocessSpec, parse_triple
    from graphopt.quant.sidecar import path_of, refuse_unwritable

    for flag, given in (("--cache", args.cache), ("--cache-in", args.cache_in)):
        if given == "":  # taken as no cache at all: --cache '' failed after calibrating
            raise QuantizeError(f"{flag} is empty; give a file name")
    if not args.calib and not args.cache_in:
        raise QuantizeError("give --calib DIR (calibration data) or --cache-in F (scales)")
    if not args.calib:  # no images to preprocess: the scales come from the cache
        given = given_options(image_options(args))
        if given:
            raise QuantizeError(
                f"{given[0]} preprocesses --calib images; this run takes its scales from "
                f"--cache-in {shown(args.cache_in)}"
            )
    if args.cache_in:
        refuse_calibrating_options_with_cache_in(args)
    refuse_options_of_other_methods(args)
    check_values(  # the API's own check, said with the flags, before anything is loaded
        args.method,
        percentile=args.percentile,
        entropy_floor=args.entropy_floor or None,
        keep_float=args.keep_float,
        accuracy_target=args.accuracy_target or None,
        histogram_sample=args.histogram_sample,
        parallel_feeds=args.parallel_feeds,
        flags=True,
    )
    refuse_measuring_without_feeds(args)
    if args.batch_size < 1:  # (folder_feeds said "batch size must be at least 1")
        raise QuantizeError(f"--batch-size must be at least 1, got {args.batch_size}")
    # the sidecars (graphopt.quant.sidecar): --cache-in's is read, --cache's written
    side_in = str(path_of(args.cache_in)) if args.cache_in else None
    side_out = str(path_of(args.cache)) if args.cache else None
    read = [("--cache-in", args.cache_in), ("--cache-in sidecar", side_in)]
    # (the --pipeline's includes and rule files too: -o inc.yaml replaced one, exit 0)
    pipeline = _pipeline_reads(args.pipeline) if args.pipeline else []
    read += [("--preprocess", args.preprocess), *pipeline]
    refuse_writing_over_read_files([("-o", args.output)], read, QuantizeError)
    # (--cache over --cache-in is fine: it rewrites the scales read, and the sidecar)
    written = [("--cache", args.cache), ("--cache's sidecar", side_out)]
    refuse_writing_over_read_files(written, read[2:], QuantizeError)
    refuse_writing_over_read_files(written[:1], read[1:2], QuantizeError)
    refuse_writing_over_read_files(written[1:], read[:1], QuantizeError)
    # the float original was replaced, and quantize refuses a quantized model: no way back
    refuse_model_path("-o", args.output, [("input", args.input)], QuantizeError)
    if args.output != STDOUT:  # (standard output: main checked it is no terminal)
        check_writable(args.output, "-o", QuantizeError, make_parents=False)
    if args.cache == STDOUT:  # (it wrote a file named '-', and '-.graphopt.json' beside it)
        raise QuantizeError(
            "--cache -: a calibration cache is written to a file, its sidecar beside it "
            "(standard output is -o's); give a file name (./- for a file named '-')"
        )
    if args.cache:
        models = [("-o", args.output), ("input", args.input)]
        refuse_model_path("--cache", args.cache, models, QuantizeError)
        check_writable(args.cache, "--cache", QuantizeError, make_parents=True)
        if not is_stream(Path(args.cache)):  # no sidecar beside a stream
            assert side_out is not None
            refuse_model_path("--cache's sidecar", side_out, models, QuantizeError)
            refuse_unwritable(args.cache)  # a FIFO there, a name too long for the folder
            check_writable(side_out, "--cache's sidecar", QuantizeError, make_parents=True)
        cache_io.refuse_loose_trt_version(args.trt_version)
        cache_io.tensorrt_version_number(args.trt_version)  # a bad --trt-version fails now
    loaded = load(args.input)
    require_text_io_names(loaded.model, args.input, QuantizeError)  # a UnicodeDecodeError
    if args.output != STDOUT and loaded.external_data:  # saved as the input: <out>.data too
        check_data_file_name(args.output)  # (its name too long was said after calibrating)
        # (saved after the cache: its weights replaced the cache, exit 0, the sidecar beside)
        beside = _data_file_beside(args.output)  # (a link's own folder, not its target's)
        if args.cache and resolved(args.cache) == beside:  # (a sidecar's name ends .json)
            raise QuantizeError(
                f"--cache {shown(args.cache)} is the external data file -o's model is saved "
                "with; give another"
            )
        # (and over a file the run read: --cache-in's cache, a deployment's, was lost)
        refuse_writing_over_read_files(
            [("-o's external data file", str(beside))], read, QuantizeError
        )
    # the model is saved as the input was (external data too): never over the input's data
    refuse_writing_over_input_data(loaded, args.output, loaded.external_data or None)
    written = [("--cache", args.cache), ("--cache's sidecar", side_out)]
    refuse_writing_over_data_files(written, [args.input], QuantizeError)
    data = None
    progress = None
    # what this run's cache and sidecar replace, put back when the run fails after writing them
    previous = {path: cache_io.bytes_before(path) for path in (args.cache, side_out) if path}
    # and the folders their write makes (the sidecar sits beside the cache: the same ones)
    made = cache_io.missing_folders(args.cache) if args.cache else []
    if args.calib:
        spec = PreprocessSpec.from_yaml(args.preprocess) if args.preprocess else PreprocessSpec()
        if args.size:
            spec.size = PreprocessSpec.from_mapping({"size": args.size}).size
        if args.letterbox:
            spec.letterbox = True
        if args.bgr:
            spec.bgr = True
        if args.mean:
            spec.mean = parse_triple(args.mean, "--mean")
        if args.std:
            spec.std = parse_triple(args.std, "--std")
        if args.scale is not None:
            spec.scale = args.scale
        # (a value the --preprocess file gave was checked as it was read, naming the file)
        flags = {
            key: f"--{key}" for key in ("mean", "std", "scale") if getattr(args, key) is not None
        }
        spec.check("preprocessing spec", flags)
        data = calibration_feeds(args.calib, loaded.model, spec, args.batch_size)
        refuse_image_options_without_images(
            image_options(args),
            data.files,
            IMAGE_SUFFIXES,
            f"--calib {shown(args.calib)}",
            QuantizeError,
        )
        # (-o or --cache naming a calibration image replaced it once the run had read it)
        refuse_writing_over_read_files(
            [("-o", args.output), *written],
            [("--calib", str(f)) for f in data.files],
            QuantizeError,
        )
        if not args.no_progress:  # with --cache-in the feeds only choose the search's samples
            progress = Progress(len(data), "choosing samples" if args.cache_in else "calibrating")
    # the accuracy search of unknown length: a count of the models it measured (ppocr_det, 3
    # images: 24 s after the calibration's bar, which said nothing before)
    search = None if args.no_progress else _search_count()
    held = _HeldRecords("graphopt.quant")  # its warnings, said once the model is saved
    saving = saved = False
    try:
        with held, search.lines_end_before_logs("graphopt.quant") if search else nullcontext():
            quantized, report = quantize_with_report(
                loaded,  # (as loaded: its errors name the path, not "the given ModelProto")
                data,
                args.method,
                args.cache,
                args.target,
                from_cache=args.cache_in,
                percentile=args.percentile,
                entropy_floor=args.entropy_floor or None,
                histogram_sample=args.histogram_sample,
                keep_float=args.keep_float,
                accuracy_target=args.accuracy_target or None,
                keep_stem=args.keep_stem,
                reduce_range=args.reduce_range,
                parallel_feeds=args.parallel_feeds,
                pipeline=args.pipeline,
                trt_version=args.trt_version,
                on_batch=progress.update if progress else None,
                on_search=_search_update(progress, search) if search else None,
            )
        model_before = file_identity(args.output)
        saving = True
        # said from the moment the model is saved (the report after it too): see below
        saved_text = f"it came once {output_name(args)} was saved: " + (
            "the model, its --cache and sidecar are this run's, whole"
            if args.cache
            else "the model is this run's, whole"
        )
        save_output(quantized, args, external_data=loaded.external_data or None)
        args.interrupted = saved_text
        saved = True
    except BaseException as e:  # the cache may be written by now: the run is to leave nothing
        if (
            saving
            and not saved
            and not getattr(e, OLD_MODEL_PUT_BACK, False)  # (a copy of it: a new file)
            and file_identity(args.output) != model_before
        ):
            # Ctrl-C or SIGTERM after the save renamed the model into place (its last step):
            # the model is this run's, so its cache and sidecar stay this run's too; put back,
            # they paired the new model with the old scales, and "nothing was written" was said
            args.interrupted = saved_text
            saved = True  # (so its held warnings are said: they are the saved model's)
            raise
        for path, before in previous.items():
            cache_io.put_back(path, before)
        cache_io.put_back(None, None, made)  # the folders, once both files are gone
        raise
    finally:
        if progress:
            progress.close()
        if search:
            search.close()
        # saved, or failed before the save (its warnings before its error, as ever); a model
        # made and not saved: its error alone
        held.release(drop=saving and not saved)
    # scales taken from a cache were chosen by whoever wrote it: no method of ours to name
    source = (
        f"scales from cache {shown(args.cache_in)}"
        + (
            f", samples of {counted(report.feeds, 'feed')} from {shown(args.calib)}"
            if report.feeds
            else ""
        )
        if args.cache_in
        else f"{args.method}, {counted(report.feeds, 'feed')} from {shown(args.calib)}"
    )
    print(
        f"{shown(args.input)}: quantized {counted(len(report.quantized_nodes), 'node')} for {args.target} "
        f"({source}); wrote {output_name(args)}"
        + (f" and {shown(args.cache)}" if args.cache else "")
        + (
            f" (float choices in {shown(side_out)})"
            if side_out and os.path.isfile(side_out)
            else ""
        )
    )
    if args.report or args.keep_float or report.kept_float or report.stem or report.unscaled_nodes:
        for line in report.lines():
            print(line)
    sys.stdout.flush()
    return 0


def calibration_feeds(
    folder: str, model: onnx.ModelProto, spec: PreprocessSpec, batch_size: int
) -> FolderFeeds:
    """`graphopt.quant.data.folder_feeds` of the --calib `folder`, its errors about the folder
    itself said with the flag, as build's and distill-targets' are ("--calib nope: no such
    folder"; it said "nope: calibration folder does not exist")."""
    from graphopt.errors import QuantizeError
    from graphopt.quant.data import folder_feeds

    root = Path(folder)
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "no such folder"
        raise QuantizeError(f"--calib {shown(folder)}: {problem}")
    try:
        feeds = folder_feeds(folder, model, spec, batch_size)
    except QuantizeError as e:  # "DIR: no calibration files (...)"; a file's errors name it
        if str(e).startswith(f"{folder}: "):  # (the folder as given: shown on one line here)
            raise QuantizeError(f"--calib {shown(folder)}: {str(e)[len(folder) + 2 :]}") from e
        raise
    feeds.check_image_size()  # --size 32x320 for a height fixed at 48: said before calibrating
    return feeds


def _search_count(stream: TextIO | None = None) -> Progress:
    """The accuracy search's count on `stream` (stderr): "accuracy search: 1 model measured"
    (it said "1 models measured"), "2 models measured"."""
    return Progress(
        None,
        "accuracy search",
        stream,
        units=("model measured", "models measured"),
        show_start=True,
    )


class _HeldRecords(logging.Filter):
    """While inside, holds the warnings (and errors) `logger` logs, in order, until `release`.
    quantize_with_report says its notes once the model is made, after any error of its own
    (the onnxruntime int8 kernel warning, a cache not applied), but the run can still fail at
    its save (a full disk): the notes were then the line before the error line of an exit 2.
    Lower levels (-v) go out as they come."""

    def __init__(self, logger: str) -> None:
        super().__init__()
        self.logger = logging.getLogger(logger)
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        self.records.append(record)
        return False

    def __enter__(self) -> None:
        self.logger.addFilter(self)

    def __exit__(self, *exc: object) -> None:
        self.logger.removeFilter(self)

    def release(self, *, drop: bool = False) -> None:
        """Log what was held (none of it with `drop`: a model that was not saved)."""
        records, self.records = self.records, []
        for record in [] if drop else records:
            self.logger.handle(record)


def _search_update(calibration: Progress | None, search: Progress) -> Callable[[int], None]:
    """The accuracy search's `on_search`: its start ends the calibration bar's line first."""

    def update(measured: int) -> None:
        if measured == 0 and calibration:
            calibration.close()
        search.update(measured)

    return update


def image_options(args: argparse.Namespace) -> list[tuple[str, object]]:
    """The options that preprocess --calib images, with their values (None or False: not
    given): .npy/.npz feeds and --cache-in scales take none of them."""
    options = ("size", "letterbox", "mean", "std", "scale", "bgr", "preprocess")
    return [(f"--{name}", getattr(args, name)) for name in options]


def refuse_calibrating_options_with_cache_in(args: argparse.Namespace) -> None:
    """QuantizeError for an option of calibration given to a --cache-in run, which calibrates
    nothing (the cache's calibrator chose its scales; --calib feeds only choose the accuracy
    search's samples, one at a time): --method (`--method percentile` was taken without a
    word), --percentile, --entropy-floor, --histogram-sample and --parallel-feeds (said before
    `refuse_options_of_other_methods`, which asked for the --method this then refuses)."""
    from graphopt.errors import QuantizeError

    given: set[str] = getattr(args, "given", set())
    source = f"this run takes its scales from --cache-in {shown(args.cache_in)}"
    if "--method" in given:
        raise QuantizeError(
            f"--method {args.method} calibrates --calib data; {source}, which the calibrator "
            "its header names chose (leave --method out)"
        )
    for option in ("--percentile", "--entropy-floor", "--histogram-sample", "--parallel-feeds"):
        if option in given:
            raise QuantizeError(f"{option} is an option of calibration; {source}")


def refuse_measuring_without_feeds(args: argparse.Namespace) -> None:
    """QuantizeError for a --cache-in run without --calib given --keep-float N (it said
    "keep_float / accuracy_target need sample feeds ... give sample_feeds >= 1 ... or
    sensitivity_data", names no flag has) or an --accuracy-target other than 0 (the search
    was skipped without a word; 0 is what turns off the one the sidecar recorded). After
    `check_values`: a value out of range is said as such."""
    from graphopt.errors import QuantizeError

    if not args.cache_in or args.calib:
        return
    given: set[str] = getattr(args, "given", set())
    source = f"this run takes its scales from --cache-in {shown(args.cache_in)}"
    if args.keep_float:
        raise QuantizeError(
            f"--keep-float {args.keep_float} ranks the groups by their error on --calib data; "
            f"{source} and has no feeds: give --calib DIR too"
        )
    if "--accuracy-target" in given and args.accuracy_target:
        raise QuantizeError(
            f"--accuracy-target {args.accuracy_target:g} measures the output error on --calib "
            f"data; {source} and has no feeds: give --calib DIR too (--accuracy-target 0 "
            "quantizes the groups its sidecar kept float)"
        )


def refuse_options_of_other_methods(args: argparse.Namespace) -> None:
    """QuantizeError for an option the run would ignore: --percentile 99.9 with the default
    --method minmax calibrated with the max, silently; likewise --entropy-floor without
    --method entropy, --histogram-sample with minmax (no histograms), --parallel-feeds with a
    histogram method (`collect` runs their feeds one at a time) and --trt-version without
    --cache (it names the cache's TensorRT)."""
    from graphopt.errors import QuantizeError
    from graphopt.quant.api import METHODS_READING

    given: set[str] = getattr(args, "given", set())
    for argument, wanted in METHODS_READING.items():
        option = "--" + argument.replace("_", "-")
        if option in given and args.method not in wanted:
            methods = " or ".join(wanted)
            raise QuantizeError(
                f"{option} is for --method {methods}; this run calibrates with {args.method}"
            )
    if args.trt_version and not args.cache:
        raise QuantizeError("--trt-version names the TensorRT of --cache's header: give --cache")
