"""`graphopt optimize IN -o OUT [--pipeline P] [--verify] [--stats] [--explain]`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from graphopt._text import counted
from graphopt.commands._common import (
    SPEC_NAME_HELP,
    Given,
    add_model_output,
    add_shapes_argument,
    model_may_follow,
    output_name,
    shown,
)
from graphopt.errors import PipelineError, SaveError, VerifyError

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from graphopt.backends.onnxruntime import Difference


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "optimize",
        help="run a pass pipeline over a model and write the result",
        description="Optimize an ONNX model with a pass pipeline (built-in name or YAML file). "
        "The output is written atomically, only when complete.",
    )
    p.add_argument("input", help="input .onnx file")
    add_model_output(p, "output .onnx file")
    p.add_argument(
        "-p",
        "--pipeline",
        default=None,
        help=f"built-in pipeline name ({', '.join(_builtin_pipelines())}) or a pipeline YAML "
        "file (default: default)",
    )
    p.add_argument(
        "--input-shape",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME:DIMS",
        help="optimize for these input shapes only, e.g. images:1x3x640x640 (fixes dynamic "
        "dims, as onnxsim's --overwrite-input-shape, so shape subgraphs fold; --verify "
        "feeds them unless --shapes says otherwise; the model may follow the values: "
        f"--input-shape NAME:DIMS MODEL; {SPEC_NAME_HELP})",
    )
    model_may_follow(p, "--input-shape")
    p.add_argument(
        "--opt-level",
        type=int,
        default=None,
        metavar="N",
        help="skip passes above this level, 0 to 2 (default: the pipeline's opt_level:, else "
        "2; it wins over every pipeline's, included ones' too)",
    )
    p.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="PASS",
        help="skip the pass of this name, as the pipeline YAML names it, e.g. "
        "eliminate-common-subexpressions (repeatable)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="run original and optimized in onnxruntime, report max differences, and write "
        "nothing when an output differs by more than --atol + --tolerance × its largest "
        "magnitude (integer outputs must be equal)",
    )
    p.add_argument(
        "--verify-level",
        default=["all"],
        type=_verify_levels,
        action=Given,
        metavar="LEVEL[,LEVEL]",
        help="onnxruntime graph optimization level(s) --verify runs both models at: disable, "
        "basic, extended or all (default all, as onnxruntime's sessions default); a comma "
        "list verifies at each, e.g. disable,all: the ort-* pipelines' models are meant to "
        "run at disable, where onnxruntime's own fusions do not hide a wrong rewrite",
    )
    p.add_argument(
        "--inputs",
        default=None,
        metavar="NPZ",
        help="feeds for --verify (default: seeded values of the declared shapes)",
    )
    add_shapes_argument(
        p,
        "input shapes for --verify's seeded feeds, e.g. x:1x3x48x320 (default: those of "
        "--input-shape, else the declared shapes, a dynamic dim 1, or 224 for the last two "
        "dims of a 4-D input)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        action=Given,
        help="--verify fails where an output differs by more than --atol + this × its largest "
        "magnitude (default 1e-4; for a float16 output at least 8 × its epsilon, 7.8e-3)",
    )
    p.add_argument(
        "--atol",
        type=float,
        default=1e-5,
        action=Given,
        help="absolute part of --verify's bound (default 1e-5), for outputs that are ~0",
    )
    p.add_argument(
        "--no-subgraphs",
        action="store_true",
        help="keep If/Loop/Scan bodies as they are (by default each body is optimized too)",
    )
    p.add_argument(
        "--verify-each",
        action="store_true",
        help="run onnx.checker (full check) after every pass that changes the model, and stop "
        "at the first whose output fails it (an error the input has already is only warned of)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="run onnx.checker (full check) on the result before writing",
    )
    p.add_argument("--stats", action="store_true", help="print per-pass timing and statistics")
    p.add_argument(
        "--explain",
        action="store_true",
        help="list where each rewrite rule matched and why it refused elsewhere",
    )
    p.add_argument(
        "--dump-dir",
        default=None,
        metavar="DIR",
        help="write the model after every changing pass into this folder as NN-PASS.onnx "
        "(001-... past 99 dumps; a folder holding an earlier run's dumps is refused)",
    )
    p.add_argument(
        "--external-data",
        choices=("auto", "yes", "no"),
        default="auto",
        help="store weights in a .data file (default auto: as the input did, or when > 2 GiB)",
    )
    p.set_defaults(run=run)


def _builtin_pipelines() -> list[str]:
    """The built-in pipelines' names (`graphopt.pipeline.builtin_pipelines`, without importing
    the pipeline machinery to build the parser)."""
    from graphopt._resources import builtin_dir

    return [p.stem for p in sorted(builtin_dir("passes").glob("*.yaml"))]


def run(args: argparse.Namespace) -> int:
    import onnx

    from graphopt.api import optimize_with_report
    from graphopt.backends.tensorrt import parse_shapes, shape_text
    from graphopt.commands._common import (
        STDOUT,
        check_data_file_name,
        check_model,
        check_writable,
        check_writable_folder,
        refuse_writing_over_input_data,
        refuse_writing_over_read_files,
        require_utf8_io_names,
        save_output,
    )
    from graphopt.ir import load
    from graphopt.passes import nchwc_fallback

    if not (args.tolerance >= 0 and args.atol >= 0):  # NaN too: no difference would exceed it
        raise VerifyError("--tolerance and --atol must be 0 or more")
    _check_opt_level(args.opt_level)
    if args.output == STDOUT and args.external_data == "yes":
        raise SaveError("--external-data yes needs a folder for the data file; -o - has none")
    read = [*_pipeline_reads(args.pipeline), ("--inputs", args.inputs)]
    refuse_writing_over_read_files([("-o", args.output)], read, SaveError)
    if args.dump_dir and args.output != STDOUT and _same_path(args.dump_dir, args.output):
        # the folder was made, every pass run, and only then the save refused
        raise SaveError(f"--dump-dir {shown(args.dump_dir)} is the -o path; give another folder")
    if args.dump_dir and args.output != STDOUT and _named_as_a_dump(args.output, args.dump_dir):
        # the save replaced the dump of that name (or a later run refused the folder)
        raise SaveError(
            f"-o {shown(args.output)}: is named as the dumps in --dump-dir are (NN-PASS.onnx): "
            "it could replace one, and would read as one; give another name or folder"
        )
    # before loading and optimizing: a folder, a missing folder, a name too long or a folder
    # that takes no file was said by the save, after the whole run
    if args.output != STDOUT:  # (standard output: main checked it is no terminal)
        check_writable(args.output, "-o", SaveError, make_parents=False)
        if args.external_data == "yes":  # its weights go beside it, in <name>.data
            check_data_file_name(args.output)
    if args.dump_dir:  # made when the passes start (after loading), written as they run
        check_writable_folder(args.dump_dir, "--dump-dir", SaveError)
        _refuse_earlier_dumps(args.dump_dir)
    ignored = sorted({"--tolerance", "--atol", "--verify-level"} & getattr(args, "given", set()))
    if ignored and not args.verify:  # the bound of a comparison that does not run
        what = "level" if ignored[0] == "--verify-level" else "bound"
        raise VerifyError(f"{ignored[0]} sets --verify's {what}: use it with --verify")
    if args.inputs and not args.verify:  # it would be read by nothing
        raise VerifyError("--inputs gives --verify's feeds: use it with --verify")
    if args.shapes and not args.verify:
        raise VerifyError("--shapes sets --verify's seeded feeds: use it with --verify")
    if args.shapes and args.inputs:  # the .npz's arrays are compared in their own shapes
        raise VerifyError(
            "--shapes sets --verify's seeded feeds, which --inputs replaces: give one of them"
        )
    fixed = parse_shapes(args.input_shape, "--input-shape")
    if any(r.min != r.max for r in fixed.values()):
        raise PipelineError("--input-shape takes one shape per input, not min,opt,max")
    input_shapes = {name: r.opt for name, r in fixed.items()}
    verify_ranges = parse_shapes(args.shapes)
    if any(r.min != r.max for r in verify_ranges.values()):  # --verify ran the opt one only
        raise VerifyError("--shapes takes one shape per input for --verify, not min,opt,max")
    verify_shapes = {name: r.opt for name, r in verify_ranges.items()}
    for name, dims in verify_shapes.items():
        if name in input_shapes and dims != input_shapes[name]:
            raise VerifyError(
                f"--shapes {shown(shape_text(name, _dims(dims)))} differs from --input-shape "
                f"{shown(shape_text(name, _dims(input_shapes[name])))}: the optimized model "
                "takes only the latter"
            )
    loaded = load(args.input, check_nodes=False)  # optimize's indexing walk checks the nodes
    if args.output != STDOUT and args.external_data == "auto" and loaded.external_data:
        check_data_file_name(args.output)  # said before optimizing, not at the save
    external = {"auto": loaded.external_data or None, "yes": True, "no": False}[args.external_data]
    if args.output != STDOUT:  # before optimizing too: it was said after the whole run
        refuse_writing_over_input_data(loaded, args.output, external)
    # optimize takes `loaded` over and edits it in place (no copy of the weights, no second
    # check); --verify compares with a copy of the original
    original = onnx.ModelProto()
    feeds: dict[str, np.ndarray] = {}
    if args.verify:
        # before optimizing: --verify could not run a model with such names
        require_utf8_io_names(loaded.model, args.input)
        original.CopyFrom(loaded.model)
        # before optimizing too: an --inputs file or a --shapes the model refuses was said by
        # onnxruntime after the whole run
        feeds = _verify_feeds(original, args.inputs, input_shapes, verify_shapes)
    nodes_before = nodes_before_text(loaded.model)
    start = time.perf_counter()
    try:
        optimized, report = optimize_with_report(
            loaded,
            args.pipeline,
            opt_level=args.opt_level,
            disable=args.disable,
            verify_each=args.verify_each,
            dump_dir=args.dump_dir,
            explain=args.explain,
            subgraphs=not args.no_subgraphs,
            input_shapes=input_shapes,
        )
    except PipelineError as e:  # the API names its argument; the user gave the flag
        raise _flag_error(e) from e
    elapsed = time.perf_counter() - start
    guarded = nchwc_fallback.branches(optimized)  # ort-cpu: the NCHWc graph and its fallback
    if args.check:
        check_model(optimized)
    if args.verify:
        from graphopt.backends.onnxruntime import compare

        variants = [("verify", optimized)]
        if guarded is not None:  # this CPU runs one branch: verify both
            variants.append(
                ("verify (NCHW fallback)", nchwc_fallback.with_block_size(optimized, 0))
            )
        given: set[str] = getattr(args, "given", set())

        def rtol(d: Difference) -> float:  # the default: no finer than the output's type
            return args.tolerance if "--tolerance" in given else d.default_rtol(args.tolerance)

        failed: list[tuple[Difference, str]] = []
        levels: list[str] = args.verify_level
        for level in levels:
            at = "" if levels == ["all"] else f" at {level}"  # the default, as before
            for label, candidate in variants:
                diffs = compare(original, candidate, feeds, level=level)
                failed += [(d, at) for d in diffs if d.exceeds(rtol(d), args.atol)]
                for d in diffs:
                    print(
                        f"{label}{at}: {shown(d.output)}: max abs diff {d.max_abs:.3g}, "
                        f"max rel diff {d.max_rel:.3g}"
                        # (an empty output's 0 was said as if values had been compared)
                        + (" (an empty output: no values compared)" if d.empty else "")
                        + _near_zero_note(d, args.atol, bool(args.inputs))
                    )
        if failed:
            d, at = max(failed, key=lambda f: f[0].excess(rtol(f[0]), args.atol))
            bound = (
                "integer values must be equal"
                if d.exact
                else f"bound --atol {args.atol:g} + --tolerance {rtol(d):g} × {d.scale:.3g}"
            )
            where = f" in onnxruntime{at}" if at else ""
            raise VerifyError(
                f"output {d.output!r} differs by {d.max_abs:.3g}{where} (relative "
                f"{d.max_rel:.3g}; {bound}); "
                + (
                    f"the output was not written ({shown(args.dump_dir)} holds the dumps)"
                    if args.dump_dir
                    else "nothing was written"
                )
            )
    # (a Ctrl-C from the rename on, the report to a slow pipe, a long --explain: save_output
    # has the command say the model is written, not "nothing was written")
    save_output(optimized, args, external_data=external)
    nodes_after = nodes_after_text(optimized)
    print(
        f"{shown(args.input)}: {nodes_before} -> {nodes_after} with pipeline {report.pipeline!r} in {elapsed * 1000:.0f} ms; wrote {output_name(args)}"
    )
    if args.stats:
        print_stats(report)
    if args.explain:
        print_explain(report)
    return 0


_API_SHAPES = "input_shapes: "  # how graphopt.api's errors about `input_shapes` start


def _near_zero_note(d: Difference, atol: float, real_inputs: bool) -> str:
    """A note for an output --verify found ~0 everywhere (its largest |value| within --atol):
    its relative difference (~1: 9e-8 of 9e-8) says nothing, the bound is --atol alone. On
    seeded feeds a detector's probability map is such an output: real inputs compare more."""
    if d.exact or d.empty or d.scale > atol:
        return ""
    hint = "" if real_inputs else "; --inputs NPZ compares real inputs"
    return f" (~0 on these inputs: its largest |value| is {d.scale:.3g}, judged by --atol{hint})"


def _flag_error(e: PipelineError) -> PipelineError:
    """`e` as the command says it: graphopt.api's error about `input_shapes` names the flag
    the user gave, --input-shape."""
    text = str(e)
    if text.startswith(_API_SHAPES):
        return PipelineError(f"--input-shape: {text[len(_API_SHAPES) :]}")
    return e


def _pipeline_reads(pipeline: str | None) -> list[tuple[str, str | None]]:
    """(flag, path) of every file the --pipeline `pipeline` reads: its own, and those its
    `include:`s and `rules:` read (`graphopt.pipeline.pipeline_files`), which `-o` must not
    name: `-o inc.yaml` wrote the model over a file the pipeline includes (exit 0, and every
    later run refused the pipeline). A pipeline that does not parse names only itself (the
    run says why it does not parse)."""
    from pathlib import Path

    from graphopt.errors import GraphoptError
    from graphopt.pipeline import builtin_pipelines, pipeline_files

    if pipeline == "":
        return []
    flag = "--pipeline" if pipeline is not None else "default pipeline"
    pipeline = pipeline or "default"  # (the installed built-ins are files too)
    path = builtin_pipelines().get(pipeline) or Path(pipeline)  # as load_pipeline picks
    try:
        if not path.is_file():
            return [(flag, pipeline)]
        files = pipeline_files(path)
    except (GraphoptError, OSError, UnicodeError, RecursionError):
        return [(flag, pipeline)]
    role = {"pipeline": flag, "include": f"{flag}'s included", "rules": f"{flag}'s rule"}
    return [(role[kind], str(file)) for kind, file in files]


def _refuse_earlier_dumps(folder: str) -> None:
    """A `SaveError` when the --dump-dir `folder` holds an earlier run's dumps, which
    `graphopt.pipeline.DumpInstrument` refuses (their names would read as this run's), said
    before loading: the instrument is made only once the model is loaded."""
    from pathlib import Path

    from graphopt.pipeline import refuse_earlier_dumps

    if not Path(folder).is_dir():
        return
    try:
        refuse_earlier_dumps(Path(folder), f"--dump-dir {shown(folder)}")
    except OSError:  # unreadable: the instrument says so
        return


def _named_as_a_dump(output: str, dump_dir: str) -> bool:
    """Whether the file `output` is in the folder `dump_dir` under a name the dumps take."""
    from pathlib import Path

    from graphopt.pipeline import _DUMP_NAME

    name = Path(output).name
    return _DUMP_NAME.fullmatch(name) is not None and _same_path(str(Path(output).parent), dump_dir)


def _same_path(a: str, b: str) -> bool:
    from graphopt.commands._common import resolved

    return resolved(a) == resolved(b)


def _verify_levels(text: str) -> list[str]:
    """'disable,all' → ['disable', 'all'] (each once, in order); an unknown level is
    argparse's one-line error."""
    from graphopt.backends.onnxruntime import LEVELS

    levels = list(dict.fromkeys(level.strip() for level in text.split(",") if level.strip()))
    unknown = [level for level in levels if level not in LEVELS]
    if unknown or not levels:
        raise argparse.ArgumentTypeError(
            f"{(unknown or [text])[0]!r} is no onnxruntime level; use {', '.join(LEVELS)} "
            "(or a comma list of them)"
        )
    return levels


def _dims(dims: Iterable[int]) -> str:
    return "x".join(map(str, dims))


def _check_opt_level(level: int | None) -> None:
    """A `PipelineError` for an `--opt-level` outside the levels passes have (0 to the highest,
    2): -1 ran no pass and exited 0 as if the model were optimized, 3 ran what 2 runs."""
    from graphopt.passes.base import all_passes

    if level is None:
        return
    by_level: dict[int, list[str]] = {}
    for name, pass_ in all_passes().items():
        by_level.setdefault(pass_.opt_level, []).append(name)
    top = max(by_level)
    if not 0 <= level <= top:
        lowest = sorted(by_level.get(0, []))
        raise PipelineError(
            f"--opt-level must be 0 to {top}, got {level} (passes run at their level and above: "
            f"0 runs only {', '.join(lowest)}; {top}, every pass)"
        )


def _verify_feeds(
    original: onnx.ModelProto,
    npz: str | None,
    input_shapes: dict[str, tuple[int, ...]],
    verify_shapes: dict[str, tuple[int, ...]],
) -> dict[str, np.ndarray]:
    """--verify's feeds, made before optimizing: the arrays of the `npz` file (--inputs), or
    seeded values of the `verify_shapes` (--shapes), else of the `input_shapes`
    (--input-shape), else of the declared shapes, a symbolic dim that --input-shape fixes in
    another input (a shared N) at its size. An --input-shape the model contradicts is its
    `PipelineError` (graphopt.api's, said first, as optimizing says it); an --inputs array
    that differs from it, or a feed onnxruntime would refuse for the original model
    (`_refuse_unfit_feeds`), a `VerifyError`."""
    import onnx

    from graphopt.api import fix_input_shapes
    from graphopt.backends.onnxruntime import example_feeds

    if input_shapes:  # its refusals first, as optimizing says them: the feeds are made from it
        inputs = onnx.ModelProto()  # the inputs' declarations and the initializers' names
        inputs.graph.input.extend(original.graph.input)
        inputs.graph.initializer.extend(
            onnx.TensorProto(name=t.name) for t in original.graph.initializer
        )
        fixing: dict[str, Sequence[int]] = dict(input_shapes)
        try:
            fix_input_shapes(inputs, fixing)
        except PipelineError as e:
            raise _flag_error(e) from e
    symbols = _fixed_symbols(original, input_shapes)
    shapes = {**input_shapes, **verify_shapes}
    # its errors name the flag: "--inputs PATH: cannot read input feeds: ..."
    npz_name = f"--inputs {shown(npz)}" if npz is not None else None
    feeds = example_feeds(
        original,
        npz=npz,
        shapes=shapes,
        dims=symbols,
        npz_name=npz_name,
        real_inputs="--inputs NPZ",
        unfed_weights_note=(
            ", nor does the optimized model (graphopt raises such a model to IR 4 and makes "
            "its weights constants, which passes can fold)"
        ),
    )
    for name, dims in input_shapes.items():
        if name in feeds and feeds[name].shape != tuple(dims):
            raise VerifyError(
                f"--inputs {shown(npz or '')}: {name} is {_dims(feeds[name].shape)}, but "
                f"--input-shape fixes it at {_dims(dims)}"
            )
    _refuse_unfit_feeds(original, feeds, input_shapes, symbols, npz, verify_shapes)
    return feeds


def _refuse_unfit_feeds(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    input_shapes: dict[str, tuple[int, ...]],
    symbols: dict[str, int],
    npz: str | None,
    verify_shapes: dict[str, tuple[int, ...]],
) -> None:
    """A `VerifyError` naming the flag, the input, and each index where a feed contradicts
    the input's declaration in `model`: another rank, or another size than a fixed dim or a
    symbolic dim that --input-shape fixes (`symbols`) has. onnxruntime said it ("Got invalid
    dimensions for input: x ... index: 2 Got: 8 Expected: 16") only after the whole
    optimization. An input --input-shape fixes is left out: the --shapes or --inputs that
    differ from it, and the --input-shape that contradicts the model, have their own errors."""
    from graphopt.backends.tensorrt import shape_text
    from graphopt.ir.values import declared_dims

    for vi in model.graph.input:
        if vi.name not in feeds or vi.name in input_shapes:
            continue
        declared = declared_dims(vi)  # (a negative dim_value, a dynamic one: None)
        if declared is None:  # no shape declared: any feed fits
            continue
        got = feeds[vi.name].shape
        name = shown(vi.name)
        if npz is not None:
            source = f"--inputs {shown(npz)}: {name} is {_dims(got) or 'a scalar'}, which"
        elif vi.name in verify_shapes:
            source = f"--shapes {shown(shape_text(vi.name, _dims(got)))}"
        else:  # (seeded from the declaration: it fits)
            source = f"the seeded feed {name} ({_dims(got)})"
        have = "[" + ", ".join("?" if d is None else shown(str(d)) for d in declared) + "]"
        fits = f"{source} does not fit input {name}, declared {have}"
        if len(got) != len(declared):
            raise VerifyError(
                f"{fits}: rank {len(got)}, not {len(declared)} "
                f"(Got: {len(got)} Expected: {len(declared)})"
            )
        wrong: list[str] = []
        fitting = list(got)
        for axis, (dim, size) in enumerate(zip(declared, got, strict=True)):
            if isinstance(dim, int):
                expected, what = dim, f"fixed at {dim}"
            elif dim is not None and dim in symbols:
                expected = symbols[dim]
                what = f"{shown(dim)}, which --input-shape fixes at {expected}"
            else:  # a free symbolic dim, or an unknown one
                continue
            if expected == size:
                continue
            wrong.append(f"index {axis} is {what} (Got: {size} Expected: {expected})")
            fitting[axis] = expected
        if wrong:
            raise VerifyError(f"{fits}: {', '.join(wrong)}{_fitting_hint(vi.name, fitting, npz)}")


def _fitting_hint(name: str, fitting: list[int], npz: str | None) -> str:
    """What `_refuse_unfit_feeds` tells a --shapes user to give for input `name`, whose dims
    fit as `fitting`: that NAME:DIMS, or, where a dim is 0 (declared so), to leave the input
    to its seeded feed, since --shapes takes no 0 (it said "give x:0x3", which --shapes then
    refused as "need 0 < min"); nothing for an --inputs file."""
    if npz is not None:
        return ""
    if 0 in fitting:
        return (
            f"; leave {shown(name)} out of --shapes (--shapes takes no 0-size dim): its seeded "
            "feed has the declared dims"
        )
    return f"; give {shown(f'{name}:{_dims(fitting)}')}"


def _fixed_symbols(
    model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]
) -> dict[str, int]:
    """{dim_param: size} that `input_shapes` gives the symbolic dims of the inputs it fixes."""
    from graphopt.ir.values import declared_dims

    symbols: dict[str, int] = {}
    for vi in model.graph.input:
        dims = input_shapes.get(vi.name)
        declared = declared_dims(vi) if dims is not None else None
        for have, want in zip(declared or (), dims or (), strict=False):
            if isinstance(have, str):
                symbols.setdefault(have, int(want))
    return symbols


def nodes_before_text(model: onnx.ModelProto) -> str:
    """The input's node count as `optimize` says it: an ort-cpu input (a guarded NCHWc model)
    counted like its output, by the NCHWc graph that runs."""
    from graphopt.passes import nchwc_fallback

    guarded = nchwc_fallback.branches(model)
    return _nodes(guarded[0] if guarded else model.graph)


def nodes_after_text(model: onnx.ModelProto) -> str:
    """The output's node count as `optimize` says it ("N nodes"): for an ort-cpu result, the
    NCHWc graph that runs, not the guard's top level (the NCHW graph is the fallback)."""
    from graphopt.passes import nchwc_fallback

    guarded = nchwc_fallback.branches(model)
    if guarded is None:
        return _nodes(model.graph, noun=True)
    nchwc, nchw = len(guarded[0].node), len(guarded[1].node)
    return f"{counted(nchwc, 'node')} (NCHWc graph; {nchw} in its NCHW fallback)"


def _nodes(graph, noun: bool = False) -> str:  # type: ignore[no-untyped-def]
    """The node count ("N", or "N nodes" with `noun`), or "N nodes (M with If/Loop/Scan
    bodies)" when the graph has bodies."""
    from graphopt.ir import node_count

    total = node_count(graph)
    if total == len(graph.node):
        return counted(total, "node") if noun else str(total)
    return f"{counted(len(graph.node), 'node')} ({total} with If/Loop/Scan bodies)"


def print_stats(report) -> None:  # type: ignore[no-untyped-def]
    seconds = report.seconds_by_pass()
    print(f"{'pass':32} {'runs':>4} {'ms':>8} {'removed':>8}  stats")
    for name, totals in report.totals().items():
        extra = ", ".join(
            f"{shown(k)}={v}" for k, v in totals.items() if k not in ("runs", "nodes_removed") and v
        )
        print(
            f"{name:32} {totals['runs']:>4} {seconds[name] * 1000:>8.1f} {totals['nodes_removed']:>8}  {extra}"
        )


def print_explain(report) -> None:  # type: ignore[no-untyped-def]
    by_rule: dict[str, list[tuple[str, str, str]]] = {}
    for rule, node, outcome, reason in report.explain:
        by_rule.setdefault(rule, []).append((node, outcome, reason))
    if not by_rule:
        print("explain: no rule was tried")
    for rule, events in by_rule.items():
        applied = [n for n, o, _ in events if o == "applied"]
        refused = [(n, r) for n, o, r in events if o != "applied"]
        # names from the model or a rule file as `shown` writes them: a newline in a node's
        # name started a line of its own, which read as another rule's or node's
        print(f"rule {shown(rule)}: applied {len(applied)}, refused {len(refused)}")
        for n in applied:
            print(f"  applied at {shown(n)}")
        for n, r in refused:
            print(f"  refused at {shown(n)}: {shown(r)}")
    sys.stdout.flush()
