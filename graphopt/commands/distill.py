"""`graphopt distill-targets TEACHER.onnx --data DIR -o targets/ [--temperature T] [--hints ...]`."""

from __future__ import annotations

import argparse
import contextlib
import os

from graphopt.commands._common import comma_list, shown
from graphopt.quant.progress import Progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill-targets",
        help="run a teacher model over a data set and store distillation targets",
        description="Run the teacher model over --data (.npy/.npz feeds or images) and store "
        "soft targets "
        "softmax(z/T) for the --logits outputs, raw tensors for the other outputs and for "
        "--hints intermediate tensors, as memory-mappable .npy files with a manifest. "
        "Interrupted runs resume where they stopped.",
    )
    p.add_argument("teacher", help="teacher .onnx file")
    p.add_argument("--data", required=True, help="folder (or file) of .npy, .npz or image samples")
    p.add_argument("-o", "--output", required=True, help="targets folder (created if missing)")
    p.add_argument(
        "--temperature",
        "-T",
        type=float,
        default=1.0,
        help="softmax temperature T of the --logits (default 1)",
    )
    p.add_argument(
        "--logits",
        default="",
        help="comma-separated outputs that are classification logits, stored as softmax(z/T) "
        "(default: none)",
    )
    p.add_argument(
        "--axis",
        type=int,
        default=-1,
        help="class axis of the logits (default -1; not 0, the batch axis samples stack on)",
    )
    p.add_argument(
        "--hints", default="", help="comma-separated intermediate tensors to store as hints"
    )
    p.add_argument(
        "--outputs", default=None, help="comma-separated teacher outputs to store (default all)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="samples per teacher run (default 1; more needs a dynamic batch dim)",
    )
    p.add_argument(
        "--checkpoint",
        type=int,
        default=None,
        metavar="N",
        help="flush and record progress every N samples (default 64, or 1/256 of a data set "
        "of more than 16384 samples: the manifest, which names every sample, is rewritten at "
        "each)",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="image preprocessing of a known model (graphopt.realmodels.PREPROCESS), e.g. layout_cdla",
    )
    p.add_argument(
        "--size",
        default=None,
        metavar="HxW",
        help="resize images to HxW (H,W too; default: the --preset's, else the teacher's fixed "
        "input size)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help="pixel multiplier before --mean/--std (default: the --preset's, else 1/255)",
    )
    p.add_argument(
        "--mean",
        default=None,
        metavar="M",
        help="per-channel mean, 1 or 3 comma-separated numbers, after --scale (default: the "
        "--preset's, else 0)",
    )
    p.add_argument(
        "--std",
        default=None,
        metavar="S",
        help="per-channel std, 1 or 3 numbers (default: the --preset's, else 1)",
    )
    p.add_argument(
        "--bgr", action="store_true", help="feed images as BGR (default: the --preset's, else RGB)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="onnxruntime intra-op threads (default 0: onnxruntime's default, one per physical "
        "core)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    # what graphopt.cli says on Ctrl-C / SIGTERM: the checkpoints are on disk
    p.set_defaults(
        run=run,
        interrupted="the targets up to the last checkpoint are kept: run the same command "
        "again to resume",
    )


def _preprocess(args: argparse.Namespace) -> dict:
    import numpy as np

    from graphopt.distill import DistillError

    options: dict = {}
    if args.preset:
        from graphopt.realmodels import PREPROCESS

        if args.preset not in PREPROCESS:
            raise DistillError(f"unknown preset {args.preset!r}; choose {', '.join(PREPROCESS)}")
        options.update(PREPROCESS[args.preset])
    from graphopt.errors import QuantizeError
    from graphopt.quant.data import parse_size, parse_triple

    try:  # the syntax of `graphopt quantize`'s flags (and H,W for --size)
        if args.size is not None:
            options["size"] = parse_size(args.size.replace(",", "x"))
        for key in ("mean", "std"):
            if getattr(args, key) is not None:
                options[key] = parse_triple(getattr(args, key), f"--{key}")
    except QuantizeError as e:  # the messages name the flag or the size
        raise DistillError(str(e)) from e
    if args.scale is not None:
        options["scale"] = args.scale
    if args.bgr:
        options["bgr"] = True
    # a NaN, an infinity or a zero std made NaN/inf pixels, and the teacher's targets from them
    # were stored (exit 0); `graphopt quantize --std 0` is refused the same way
    for key in ("scale", "mean", "std"):
        values = np.atleast_1d(np.asarray(options.get(key, 1.0), dtype=np.float64))
        if not np.isfinite(values).all():
            raise DistillError(f"--{key}: {values.tolist()} must be finite numbers")
    if 0.0 in np.atleast_1d(np.asarray(options.get("std", 1.0), dtype=np.float64)):
        raise DistillError(f"--std: {list(options['std'])} has a zero (pixels are divided by it)")
    return options


def refuse_image_options_without_data_images(args: argparse.Namespace) -> None:
    """A `DistillError` for an image option (--preset, --size, --scale, --mean, --std, --bgr)
    when --data holds no image: .npy/.npz samples are fed as they are. The data is listed
    only when such an option is given."""
    from graphopt.commands._common import given_options, refuse_image_options_without_images
    from graphopt.distill import IMAGE_SUFFIXES, DistillError, data_sources

    options = [
        (f"--{name}", getattr(args, name))
        for name in ("preset", "size", "scale", "mean", "std", "bgr")
    ]
    if given_options(options):
        files = [s.path for s in data_sources(args.data) if s.path is not None]
        where = f"--data {shown(args.data)}"
        refuse_image_options_without_images(options, files, IMAGE_SUFFIXES, where, DistillError)


def refuse_unwritable_targets(args: argparse.Namespace) -> None:
    """A `DistillError` for a targets folder that cannot be written (a file there, a missing
    parent that is a file, a name too long, a folder that takes no new file) or that is the
    --data folder, said before the teacher is loaded and run (write_targets makes the folder
    only then). Targets written into --data hid every sample from the next run, the resume
    too: the data files under a targets folder are none."""
    from pathlib import Path

    from graphopt.commands._common import check_writable_folder
    from graphopt.distill import DistillError

    check_writable_folder(args.output, "-o", DistillError)
    if Path(args.data).is_dir() and Path(args.output).resolve() == Path(args.data).resolve():
        raise DistillError(f"-o {shown(args.output)} is the --data folder; give another folder")


class _Bar:
    """The progress bar on stderr: `graphopt.quant.progress.Progress`, as quantize's and
    bench's (`distill-targets 3/22 [===   ] 14% elapsed 2s ETA 12s`, redrawn in place on a
    terminal, a line at most every 10 s in a log). Its own bar redrew with a carriage return
    wherever stderr went, so a log or CI console held every redraw on one line. A resumed run
    counts the samples it runs (its label says where it resumed), so that its ETA is that of
    the samples left."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.first = 0  # the samples done before this run (a resume)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.first = done
            label = "distill-targets" + (f" (resumed after {done} of {total})" if done else "")
            self.bar = Progress(total - done, label=label, show_start=True)
        self.bar.update(done - self.first)  # 0 first: the line shows that the run started

    def close(self) -> None:
        """End a bar left mid-line (a run stopped by an error or Ctrl-C), so that the message
        that follows starts on a line of its own."""
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from graphopt.distill import DistillError, remove_unkept, write_targets
    from graphopt.errors import GraphoptError, PassError
    from graphopt.ir.model_io import missing_folders, remove_folders, special_file_kind

    if not comma_list(args.logits):  # T and the axis shape softmax(z/T): logits only
        for option, value, default in (
            ("--temperature", args.temperature, 1.0),
            ("--axis", args.axis, -1),
        ):
            if value != default:
                raise DistillError(f"{option} applies to --logits outputs; give --logits")
    if args.threads < 0:
        raise DistillError(f"--threads must be 0 (one per core) or more, got {args.threads}")
    # before the teacher is loaded, named by the flags (write_targets names its arguments)
    if not 0 < args.temperature < float("inf"):
        raise DistillError(f"--temperature must be > 0 and finite, got {args.temperature}")
    for option, value in (("--batch-size", args.batch_size), ("--checkpoint", args.checkpoint)):
        if value is not None and value < 1:
            raise DistillError(f"{option} must be 1 or more, got {value}")
    refuse_unwritable_targets(args)
    if not os.path.exists(args.data):  # named as build's --calib is (the flag, then why)
        raise DistillError(f"--data {shown(args.data)}: no such file or folder")
    kind = special_file_kind(args.data)  # (it was said after loading the teacher, no flag)
    if kind is not None:
        raise DistillError(f"--data {shown(args.data)}: is not a regular file or folder ({kind})")
    refuse_image_options_without_data_images(args)
    bar = None if args.no_progress else _Bar()
    made = missing_folders(Path(args.output))  # the folders this run makes: removed if empty
    try:
        manifest = write_targets(
            args.teacher,
            args.data,
            args.output,
            temperature=args.temperature,
            logits=comma_list(args.logits),
            hints=comma_list(args.hints),
            outputs=comma_list(args.outputs) if args.outputs is not None else None,
            axis=args.axis,
            batch_size=args.batch_size,
            checkpoint=args.checkpoint,
            preprocess=_preprocess(args),
            threads=args.threads,
            progress=bar,
        )
    except BaseException as e:
        # a bad sample, Ctrl-C or SIGTERM before the first checkpoint: the preallocated target
        # files (a data set's size of zeros, their disk blocks reserved) and the manifest saying
        # 0 done stayed, for a rerun to remove; after Ctrl-C the message said 'the targets up to
        # the last checkpoint are kept' of them. Nothing in them is kept: they go
        removed = False
        with contextlib.suppress(GraphoptError):  # the error that stopped the run is news
            removed = remove_unkept(args.output)
        if removed and not isinstance(e, GraphoptError):  # what graphopt.cli says of it
            args.interrupted = (
                "it stopped before its first checkpoint: nothing was kept (its files removed); "
                "run the same command again to start over"
            )
        remove_folders(made)  # a bad sample, teacher or option: nothing stored (a
        # checkpoint's files stay, and so do their folders)
        if isinstance(e, PassError) and e.pass_name == "expose-tensors" and args.hints:
            # the hints are exposed by that pass, which the user never named: say the flag
            text = str(e).removeprefix("pass expose-tensors: ")
            raise DistillError(f"--hints {shown(args.hints)}: {text}") from e
        raise
    finally:
        if bar is not None:
            bar.close()
    for name, entry in manifest["tensors"].items():  # a newline in a name split its line
        print(
            f"{entry['kind']:5} {shown(name)}: {entry['dtype']} {entry['shape']} -> {entry['file']}"
        )
    for name, entry in manifest.get("constants", {}).items():  # computed from constants only
        print(
            f"{entry['kind']:5} {shown(name)}: {entry['dtype']} {entry['shape']} -> "
            f"{entry['file']} (once: the same for every sample)"
        )
    print(f"{manifest['done']}/{manifest['count']} samples; wrote {shown(args.output)}")
    return 0
