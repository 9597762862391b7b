"""`graphopt demo [--model NAME] [--pipeline P]`: the main job, end to end, on a real detector.

Fetches a trained detector from its PyPI wheel into the cache (no server, no GPU), optimizes it,
checks the result with onnx.checker, runs original and optimized in onnxruntime on real
photographs from the scikit-image wheel, and prints what happened. A result that holds
onnxruntime's own ops (the ort-* pipelines' com.microsoft kernels) is compared at
ORT_DISABLE_ALL too, the level it is meant to run at; an ort-cpu model's NCHW fallback (the
graph a CPU of another block size runs) is compared as well as its NCHWc graph.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from graphopt._text import counted
from graphopt.commands._common import STDOUT, add_model_output, output_name, shown

if TYPE_CHECKING:
    import onnx


def add_parser(sub: argparse._SubParsersAction) -> None:
    from graphopt.realmodels import IMAGE_NAMES, MODELS

    p = sub.add_parser(
        "demo",
        help="optimize a real detector fetched from PyPI and verify it on real images",
        description="Fetch a real detector (cached under $GRAPHOPT_CACHE, default "
        "~/.cache/graphopt), optimize it, verify it "
        "against the original on real photographs and print per-pass statistics.",
    )
    p.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="common_det",
        help="which real detector (default: common_det, YOLOX-style)",
    )
    p.add_argument(
        "-p", "--pipeline", default=None, help="pipeline name or YAML (default: default)"
    )
    p.add_argument(
        "--images",
        type=int,
        default=2,
        metavar="N",
        help=f"real photographs to verify on, 1 to {len(IMAGE_NAMES)} (default 2)",
    )
    add_model_output(p, "also write the optimized model here", required=False)
    p.set_defaults(run=run)


def targets_onnxruntime(model: onnx.ModelProto) -> bool:
    """Whether `model` imports an opset of onnxruntime's own (com.microsoft, its NCHWc
    kernels): made for onnxruntime, and run there at ORT_DISABLE_ALL."""
    return any(o.domain.startswith("com.microsoft") for o in model.opset_import)


def _ratio(most_abs: float, scale: float) -> float:
    """max |a-b| / max |a|; an output that is 0 on every image: 0 if equal, else inf."""
    if scale > 0:
        return most_abs / scale
    return 0.0 if most_abs == 0 else float("inf")


def refuse_writing_over_the_cache(output: str, model: str, images: int) -> None:
    """A `SaveError` when `output` is a file the demo reads from the cache (the detector as
    `realmodels.fetch_model` extracts it, its data, the photographs), fetched yet or not:
    `-o` would replace the cache's model with the optimized one, which every later demo,
    benchmark and test would then take for the original. Likewise any path in the cache's
    `files` and `wheels` folders (another model or photograph, a wheel), by any name that
    reaches them (a link, `..`, another case where the file system ignores case). A hard link
    elsewhere to a cached file is fine: the save replaces the link, not the file."""
    from graphopt.errors import SaveError
    from graphopt.realmodels import IMAGE_NAMES, IMAGE_WHEEL, MODELS, cache_dir, member_path

    spec = MODELS[model]
    cached = [(f"{model} model", member_path(spec.package, spec.member))]
    if spec.data:
        cached.append((f"{model} model's data", member_path(spec.package, spec.data)))
    cached += [
        (f"photograph {name}", member_path(IMAGE_WHEEL, f"skimage/data/{name}"))
        for name in IMAGE_NAMES[:images]
    ]
    target = Path(output).resolve()
    for what, path in cached:
        if path.resolve() == target:
            raise SaveError(
                f"-o {shown(output)} is the cached {what} the demo reads; give another path"
            )
    # any other file there too: another model, photograph or wheel, fetched yet or not (a later
    # fetch takes a file at a member's path for that member, extracted)
    root = cache_dir()
    for folder in (root / "files", root / "wheels"):
        if _within(target, folder):
            raise SaveError(
                f"-o {shown(output)} is in the model cache's {shown(folder)}, whose files "
                "demos, benchmarks and tests read as the fetched originals; give a path outside "
                "it"
            )


def _within(path: Path, folder: Path) -> bool:
    """Whether the resolved `path` lies under `folder`, by name or by identity: a folder met
    by another name (a case-insensitive file system's `FILES`, a bind mount) is the same
    st_dev/st_ino."""
    if path.is_relative_to(folder.resolve()):
        return True
    try:
        st = folder.stat()
    except OSError:  # not made yet: nothing in it to write over
        return False
    for parent in path.parents:
        try:
            seen = parent.stat()
        except OSError:
            continue
        if (seen.st_dev, seen.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def run(args: argparse.Namespace) -> int:
    from graphopt.api import optimize_with_report
    from graphopt.backends.onnxruntime import compare
    from graphopt.commands._common import check_model, save_output
    from graphopt.commands.optimize import nodes_after_text, nodes_before_text, print_stats
    from graphopt.errors import VerifyError
    from graphopt.ir import load_model
    from graphopt.passes import nchwc_fallback
    from graphopt.pipeline import load_pipeline
    from graphopt.realmodels import (
        IMAGE_NAMES,
        MODELS,
        cache_dir,
        fetch_model,
        model_inputs,
        pending_downloads,
    )

    if args.images < 1:  # none would verify nothing (and -1 took all the images but one)
        raise VerifyError(f"--images must be at least 1, got {args.images}")
    if args.images > len(IMAGE_NAMES):  # it verified on the 22 there are, without a word
        raise VerifyError(
            f"--images must be at most {len(IMAGE_NAMES)}, the photographs the demo has, "
            f"got {args.images}"
        )
    # said before the fetch, optimization and verification, not after them; -o '' too (it
    # wrote nothing, exit 0: '' is no path, and the other commands say so)
    if args.output is not None:
        from graphopt.commands._common import check_writable, refuse_writing_over_read_files
        from graphopt.errors import SaveError

        if args.output != STDOUT:  # (standard output: main checked it is no terminal)
            check_writable(args.output, "-o", SaveError, make_parents=False)
            refuse_writing_over_the_cache(args.output, args.model, args.images)

        read = [("--pipeline", args.pipeline)]
        refuse_writing_over_read_files([("-o", args.output)], read, SaveError)
    pipeline = load_pipeline(args.pipeline)  # a typo said after the first run's ~90 MB, no more
    spec = MODELS[args.model]
    pending = pending_downloads(args.model, args.images)
    if pending:  # ~90 MB on the first run: say why nothing else shows for a while
        print(
            f"fetching {' and '.join(pending)} with pip into {shown(cache_dir())} (once)",
            flush=True,
        )
    path = fetch_model(args.model)
    print(f"model: {args.model} ({spec.description}) from {spec.package}: {shown(path)}")
    original = load_model(path)
    start = time.perf_counter()
    optimized, report = optimize_with_report(original, pipeline)
    elapsed = time.perf_counter() - start
    print(  # counted as `optimize` counts (ort-cpu: the NCHWc graph, not the guard's 5 nodes)
        f"pipeline {report.pipeline!r}: {nodes_before_text(original)} -> "
        f"{nodes_after_text(optimized)} in {elapsed * 1000:.0f} ms"
    )
    print_stats(report)
    check_model(optimized)
    print("onnx.checker (full_check): ok")
    failed = False
    # per (level, output): max |a-b| and max |a| over all the images, README's measure; a
    # ratio per image is no measure where an output is all but zero (ppocr_det's text map of
    # a photograph without text: 1.2e-7 apart, "relative 1")
    spread: dict[tuple[str, str, str], tuple[float, float]] = {}
    images = model_inputs(args.model, args.images)
    levels = ["all", "disable"] if targets_onnxruntime(optimized) else ["all"]
    # an ort-cpu model runs its NCHWc graph on a CPU of its block size, its NCHW fallback on
    # any other: both are compared, as optimize --verify compares them (the demo compared
    # only the branch this CPU takes)
    variants = [("", optimized)]
    if nchwc_fallback.branches(optimized) is not None:
        variants.append((" (NCHW fallback)", nchwc_fallback.with_block_size(optimized, 0)))
    for level in levels:
        at = f" at level {level}" if len(levels) > 1 else ""
        for label, candidate in variants:
            for i, feeds in enumerate(images):
                for d in compare(original, candidate, feeds, level=level):
                    key = (level, label, d.output)
                    most_abs, most_scale = spread.get(key, (0.0, 0.0))
                    spread[key] = (max(most_abs, d.max_abs), max(most_scale, d.scale))
                    failed = failed or d.exceeds(1e-4, 1e-5)
                    print(
                        f"real image {i}{at}{label}: output {d.output}: max abs diff "
                        f"{d.max_abs:.3g}, max rel diff {d.max_rel:.3g}"
                    )
    worst = max(_ratio(most_abs, scale) for most_abs, scale in spread.values())
    print(
        f"max output difference over {counted(len(images), 'real image')}: "
        f"{worst:.3g} "
        "(max |a-b| over the images / max |a| over them)"
    )
    if failed:
        raise VerifyError(
            f"optimized outputs differ by up to {worst:.3g} relative (bound 1e-5 + 1e-4 × max|x|)"
        )
    if args.output:
        save_output(optimized, args)
        print(f"wrote {output_name(args)}")
    return 0
