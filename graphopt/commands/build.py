"""`graphopt build IN.onnx -o MODEL.plan [--fp16] [--int8 --calib DIR | --cache FILE] [--shapes ...]`.

Builds a TensorRT engine (TensorRT 10 or 11, whichever is installed). Without TensorRT, or
without an NVIDIA GPU, it exits 2 with one line saying which is missing and how to get it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from graphopt._text import shown
from graphopt.commands._common import (
    add_shapes_argument,
    check_writable,
    read_npz,
    refuse_writing_over_data_files,
)

log = logging.getLogger("graphopt.commands.build")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="build a TensorRT engine from an ONNX model (needs TensorRT and an NVIDIA GPU)",
        description="Build a serialized TensorRT engine. A Q/DQ model (from 'graphopt quantize') "
        "builds INT8 on TensorRT 10 and 11; --int8 on a model without Q/DQ calibrates with "
        "TensorRT 10's entropy calibrator (removed in TensorRT 11). The engine and a JSON "
        "sidecar (<engine>.json) are written atomically, only when the build succeeds.",
    )
    p.add_argument("input", help="input .onnx file (optimized or Q/DQ-quantized)")
    p.add_argument("-o", "--output", required=True, help="output engine file (.plan / .engine)")
    p.add_argument("--fp16", action="store_true", help="allow float16 kernels")
    p.add_argument(
        "--int8",
        action="store_true",
        help="INT8: from the model's Q/DQ nodes, else (TensorRT 10) calibrate with --calib/--cache",
    )
    p.add_argument(
        "--calib",
        metavar="DIR",
        default=None,
        help="folder of calibration images (RGB, resized to the input's size, scaled to 0..1) "
        "or .npy/.npz feeds, for --int8 without Q/DQ",
    )
    p.add_argument(
        "--cache",
        metavar="FILE",
        default=None,
        help="TensorRT calibration cache: read if it exists, written after calibrating",
    )
    p.add_argument(
        "--calib-count",
        type=int,
        default=32,
        metavar="N",
        help="calibration files to use from --calib, in name order (default 32)",
    )
    add_shapes_argument(
        p, "optimization profile: NAME:1x3x640x640 or NAME:MIN,OPT,MAX (needed for dynamic inputs)"
    )
    p.add_argument(
        "--workspace",
        type=int,
        default=None,
        metavar="MiB",
        help="TensorRT workspace limit (default: TensorRT's own)",
    )
    p.add_argument(
        "--timing-cache",
        default=None,
        metavar="FILE",
        help="TensorRT timing cache: read if it exists, written back after the build",
    )
    p.add_argument(
        "--strongly-typed",
        action="store_true",
        help="TensorRT 10: build a strongly typed network (always so on TensorRT 11)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from graphopt.backends.tensorrt import build_engine, parse_shapes
    from graphopt.errors import BackendError

    if args.calib and not args.int8:
        raise BackendError("--calib is only used with --int8")
    if args.cache and not args.int8:  # an fp32/fp16 build neither reads nor writes it
        raise BackendError("--cache (a calibration cache) is only used with --int8")
    if args.calib_count < 1:  # 0 calibrated on nothing, -1 dropped the last file
        raise BackendError(f"--calib-count must be at least 1, got {args.calib_count}")
    if args.workspace is not None and args.workspace < 0:
        raise BackendError(f"--workspace must be 0 MiB or more, got {args.workspace}")
    require_input_file(args.input)  # before TensorRT's import: "not installed" hid it
    refuse_overwriting_the_input(args)
    shapes = parse_shapes(args.shapes)
    calibration = None
    if args.calib:
        calibration = calibration_feeds(args.input, args.calib, args.calib_count, shapes)
    info = build_engine(
        args.input,
        args.output,
        fp16=args.fp16,
        int8=args.int8,
        calibration=calibration,
        cache=args.cache,
        shapes=shapes,
        workspace_mib=args.workspace,
        timing_cache=args.timing_cache,
        strongly_typed=True if args.strongly_typed else None,
    )
    from graphopt.backends.tensorrt import sidecar_path

    print(  # "...; wrote OUT", as optimize, quantize and split end
        f"{shown(args.input)}: TensorRT {info.tensorrt_version} {info.precision} engine "
        f"({info.engine_bytes / 2**20:.1f} MiB); wrote {shown(args.output)} and "
        f"{shown(sidecar_path(args.output))}"
    )
    return 0


def require_input_file(path: str) -> None:
    """A `LoadError` when the input `path` is missing or a folder, said before anything that
    needs TensorRT (whose absence was reported first, hiding a mistyped name)."""
    from graphopt.errors import LoadError

    if not Path(path).exists():
        raise LoadError(f"{shown(path)}: no such file")
    if Path(path).is_dir():
        raise LoadError(f"{shown(path)}: is a directory, not a file")


def refuse_overwriting_the_input(args: argparse.Namespace) -> None:
    """A `BackendError` when a file that build writes (the engine, its JSON sidecar, the
    calibration or timing cache) cannot be written (`check_writable`: a folder there, a
    parent that is a file, a name too long, a folder that takes no new file; missing folders
    are made), or is the input model or another of them: `-o m.onnx` for input m.onnx replaced
    the model with the engine, `--timing-cache m.onnx` with a timing cache. Said before
    TensorRT is imported and the engine built: a name too long was a traceback, a read-only
    folder an error after the build, and a sidecar's name too long (5 bytes over the
    engine's) left the engine written without it."""
    from graphopt.backends.tensorrt import sidecar_path
    from graphopt.errors import BackendError
    from graphopt.ir.model_io import is_stream, special_file_kind

    if is_stream(Path(args.output)):  # (as `-o -`: graphopt.cli refuses it for build)
        # the engine was written straight to it and the sidecar beside it, as a new file:
        # `-o /dev/null` made /dev/null.json (root), or failed there on /dev's permissions
        kind = special_file_kind(args.output) or "a link to an open file"
        raise BackendError(
            f"-o {shown(args.output)} is {kind}: build writes the engine and its sidecar "
            f"{shown(sidecar_path(args.output).name)} as files side by side; give a file path"
        )
    taken = {Path(args.input).resolve(): "the input model"}
    written = [("-o", args.output), ("the engine's sidecar", str(sidecar_path(args.output)))]
    written += [
        (flag, path)
        for flag, path in (("--cache", args.cache), ("--timing-cache", args.timing_cache))
        if path
    ]
    for flag, path in written:  # (write_atomic makes the missing folders)
        check_writable(path, flag, BackendError, make_parents=True)
    refuse_writing_over_data_files(written, [args.input], BackendError)
    for flag, path in written:
        key = Path(path).resolve()
        if key in taken:
            raise BackendError(
                f"{flag} {shown(path)} names the same file as {taken[key]}; give another"
            )
        taken[key] = flag


def calibration_feeds(model_path: str, folder: str, count: int, shapes: dict) -> list:  # type: ignore[type-arg]
    """Feeds for the TensorRT 10 calibrator from a folder: .npy/.npz arrays as they are, or
    images resized to the model's (or the profile's opt) input size, scaled to 0..1. Other
    files are skipped (logged), as `graphopt quantize --calib` skips them. An .npz feeds every
    input it names; a .npy array or an image feeds one, so it needs a single-input model."""
    import onnx
    from google.protobuf.message import DecodeError

    from graphopt.backends.onnxruntime import input_specs
    from graphopt.commands.check import refuse_profiles_build_refuses
    from graphopt.errors import BackendError, first_line
    from graphopt.ir.values import declared_dims
    from graphopt.realmodels import load_image, preprocess

    try:
        model = onnx.load(model_path, load_external_data=False)
    except (OSError, DecodeError) as e:
        raise BackendError(f"{shown(model_path)}: cannot read the model: {first_line(e)}") from e
    specs = input_specs(model)
    # a profile the build refuses (a name the model has not, a rank or a fixed dim the input's
    # declaration contradicts: a 2-D input given --shapes x:1x3x8x8) is said before a file is
    # read, as `graphopt check` says it (images were decoded and resized to it, and only
    # TensorRT's build refused it), and before the image size, which took a misspelt name for
    # none given ("input 'x' has a dynamic size: give --shapes x:1x3xHxW")
    refuse_profiles_build_refuses(model, shapes)
    files = calibration_files(folder)[:count]
    size = None  # (H, W) of the images, said before any is decoded
    if len(specs) == 1 and any(p.suffix.lower() not in (".npy", ".npz") for p in files):
        name, _, dims = specs[0]
        vi = next(vi for vi in model.graph.input if vi.name == name)
        if declared_dims(vi) == ():  # (input_specs gives no dims for an unknown rank too)
            raise BackendError(
                f"input {name!r} is a scalar: calibration images make 1x3xHxW tensors; give "
                ".npy/.npz feeds"
            )
        size = calibration_image_size(name, dims, shapes)
    feeds = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix != ".npz" and len(specs) != 1:  # an .npz names its inputs; these feed one
            kind = "a .npy array" if suffix == ".npy" else "an image"
            raise BackendError(
                f"--calib {shown(path)}: {kind} feeds one input and the model has "
                f"{len(specs)}; give .npz feeds (one array per input name)"
            )
        if suffix in (".npy", ".npz"):
            try:
                feeds.append({specs[0][0]: _npy(path)} if suffix == ".npy" else read_npz(path))
            except (OSError, ValueError) as e:
                raise BackendError(f"--calib {shown(path)}: cannot read: {e}") from e
        else:
            assert size is not None  # (one input, and an image among the files)
            feeds.append({specs[0][0]: preprocess(load_image(path), size, scale=1 / 255.0)})
    return feeds


def _npy(path: Path) -> object:
    """The array of a .npy calibration file (ValueError for one numpy cannot read)."""
    from graphopt.arrays import load_arrays

    value = load_arrays(path)
    if isinstance(value, dict):
        raise ValueError("an .npz archive under a .npy name")
    return value


def calibration_files(folder: str | Path) -> list[Path]:
    """The calibration files of `folder` in name order: images and .npy/.npz feeds (the
    suffixes `graphopt quantize --calib` reads); any other file is skipped with a log line.
    One so named that is no regular file (a broken link: a data set half copied, a folder) is
    named in a warning, or in the error when no file is left, as `quantize --calib` does (it
    was skipped without a word)."""
    from graphopt.errors import BackendError
    from graphopt.quant.data import ARRAY_SUFFIXES, IMAGE_SUFFIXES, list_calibration_folder

    root = Path(folder)
    try:  # (a folder this user may not list, or stat in: a PermissionError, a traceback)
        if not root.is_dir():
            problem = "is a file, not a folder" if root.exists() else "no such folder"
            raise BackendError(f"--calib {shown(folder)}: {problem}")
        files, left_out = list_calibration_folder(root)
        if log.isEnabledFor(logging.INFO):
            for path in sorted(set(root.iterdir()) - set(files)):
                if path.is_file():
                    log.info("--calib: skipping %s (not an image, .npy or .npz)", shown(path))
    except OSError as e:
        raise BackendError(
            f"--calib {shown(folder)}: cannot read calibration folder: {e.strerror or e}"
        ) from e
    if not files:
        also = f"; skipped {left_out}: not a regular file" if left_out else ""
        raise BackendError(
            f"--calib {shown(folder)}: no calibration files ({', '.join(ARRAY_SUFFIXES + IMAGE_SUFFIXES)}){also}"
        )
    if left_out:
        log.warning("--calib %s: skipping %s: not a regular file", shown(folder), left_out)
    return files


def calibration_image_size(name: str, dims: Sequence[object], shapes: dict) -> tuple[int, int]:  # type: ignore[type-arg]
    """(H, W) that calibration images of input `name` are resized to: the profile's opt shape
    when `--shapes` names the input, else the model's fixed H and W. Images make one
    1x3xHxW tensor each, so the input must be 4-D with 3 channels (a BackendError otherwise)."""
    from graphopt.backends.tensorrt import shape_spec
    from graphopt.errors import BackendError
    from graphopt.quant.data import image_too_large

    if name in shapes:
        r = shapes[name]
        given = "x".join(str(d) for d in r.opt)
        if len(r.opt) != 4 or r.opt[1] != 3:
            raise BackendError(
                f"--shapes {shape_spec(name, given)}: calibration images make 1x3xHxW tensors; "
                "give a 4-D NCHW shape with 3 channels, or .npy/.npz feeds"
            )
        if not r.min[0] <= 1 <= r.max[0]:
            raise BackendError(
                f"--shapes {name}: the profile's batch range {r.min[0]}..{r.max[0]} excludes the "
                "batch of 1 that calibration images make; give .npy/.npz feeds"
            )
        if r.opt[0] != 1:  # TensorRT calibrates at the profile's opt shape
            raise BackendError(
                f"--shapes {name}: TensorRT calibrates at the profile's opt shape, batch "
                f"{r.opt[0]}, not the batch of 1 that calibration images make; give an opt "
                "batch of 1 or .npy/.npz feeds"
            )
        height, width = int(r.opt[2]), int(r.opt[3])
        too_large = image_too_large(height, width)
        if too_large:
            raise BackendError(
                f"--shapes {shape_spec(name, given)}: calibration images resized to it: "
                f"{too_large}; give a smaller opt shape or .npy/.npz feeds"
            )
        return height, width
    if dims and (len(dims) != 4 or (isinstance(dims[1], int) and dims[1] != 3)):
        raise BackendError(
            f"input {name!r} has shape [{', '.join(str(d) for d in dims)}]: calibration images "
            "make 1x3xHxW tensors; give .npy/.npz feeds"
        )
    h, w = dims[2:] if dims else (None, None)
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return h, w
    raise BackendError(
        f"input {name!r} has a dynamic size: give --shapes {shape_spec(name, '1x3xHxW')} for "
        "calibration"
    )
