"""`graphopt build IN.onnx -o MODEL.plan [--fp16] [--int8 --calib DIR | --cache FILE] [--shapes ...]`.

Builds a TensorRT engine (TensorRT 10 or 11, whichever is installed). Without TensorRT, or
without an NVIDIA GPU, it exits 2 with one line saying which is missing and how to get it.
"""

from __future__ import annotations

import argparse

from graphopt.commands._common import add_shapes_argument, read_npz


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
        help="folder of calibration images (or .npy/.npz feeds) for --int8 without Q/DQ",
    )
    p.add_argument(
        "--cache",
        metavar="FILE",
        default=None,
        help="TensorRT calibration cache: read if it exists, written after calibrating",
    )
    p.add_argument("--calib-count", type=int, default=32, help="calibration batches to use")
    add_shapes_argument(
        p, "optimization profile: NAME:1x3x640x640 or NAME:MIN,OPT,MAX (needed for dynamic inputs)"
    )
    p.add_argument("--workspace", type=int, default=None, metavar="MiB", help="workspace limit")
    p.add_argument(
        "--timing-cache", default=None, metavar="FILE", help="TensorRT timing cache to reuse"
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
    print(
        f"{args.input}: TensorRT {info.tensorrt_version} {info.precision} engine "
        f"({info.engine_bytes / 2**20:.1f} MiB) written to {args.output} (+ .json)"
    )
    return 0


def calibration_feeds(model_path: str, folder: str, count: int, shapes: dict) -> list:  # type: ignore[type-arg]
    """Feeds for the TensorRT 10 calibrator from a folder: .npy/.npz arrays as they are, or
    images resized to the model's (or the profile's opt) input size, scaled to 0..1."""
    from pathlib import Path

    import numpy as np
    import onnx
    from google.protobuf.message import DecodeError

    from graphopt.backends.onnxruntime import input_specs
    from graphopt.errors import BackendError
    from graphopt.realmodels import load_image, preprocess

    try:
        model = onnx.load(model_path, load_external_data=False)
    except (OSError, DecodeError) as e:
        raise BackendError(f"{model_path}: cannot read the model: {e}") from e
    specs = input_specs(model)
    if len(specs) != 1:
        raise BackendError("--calib DIR feeds single-input models; give .npz feeds per input")
    name, _, dims = specs[0]
    files = (
        sorted(p for p in Path(folder).iterdir() if p.is_file()) if Path(folder).is_dir() else []
    )
    if not files:
        raise BackendError(f"--calib {folder}: no files in that folder")
    feeds = []
    for path in files[:count]:
        if path.suffix in (".npy", ".npz"):
            try:
                feeds.append({name: np.load(path)} if path.suffix == ".npy" else read_npz(path))
            except (OSError, ValueError) as e:
                raise BackendError(f"--calib {path}: cannot read: {e}") from e
        else:
            if name in shapes:
                h, w = shapes[name].opt[2], shapes[name].opt[3]
            elif len(dims) == 4 and all(isinstance(d, int) and d > 0 for d in dims[2:]):
                h, w = int(dims[2]), int(dims[3])
            else:
                raise BackendError(
                    f"input {name!r} has a dynamic size: give --shapes {name}:1x3xHxW for calibration"
                )
            feeds.append({name: preprocess(load_image(path), (h, w), scale=1 / 255.0)})
    return feeds
