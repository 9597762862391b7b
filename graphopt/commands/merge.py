"""`graphopt merge A.onnx B.onnx [...] -o multi.onnx` and `graphopt split multi.onnx -o task.onnx`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from graphopt._text import counted, escaped_fields
from graphopt.commands._common import (
    STDOUT,
    add_model_output,
    check_writable,
    comma_list,
    output_name,
    refuse_data_file_of_inputs,
    refuse_model_path,
    refuse_writing_over_data_files,
    save_output,
    shown,
)

if TYPE_CHECKING:
    import onnx


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="merge models that share a backbone into one multi-task model",
        description="Merge ONNX models into one graph that computes their common part once "
        "(identical ops, attributes and weights on the same inputs) and attaches every model's "
        "own head. Outputs are prefixed per model. Written atomically, only when complete.",
    )
    p.add_argument("inputs", nargs="+", metavar="MODEL", help="input .onnx files")
    add_model_output(p, "output .onnx file")
    p.add_argument(
        "--prefix",
        default=None,
        help="comma-separated output prefixes, one per model (default: file stem + '_'); a "
        "comma in a prefix is written \\, and a backslash before a comma or at a prefix's end "
        "doubled, as in split --outputs",
    )
    p.add_argument(
        "--input-map",
        action="append",
        default=[],
        metavar="I:NAME=MERGED",
        help="model I's input NAME reads merged input MERGED (repeatable), e.g. 1:x=image; I: "
        "the model's number in the order given, from 0, or its prefix; a ':' in I or an '=' "
        "in NAME is written \\: or \\= (and a backslash before one of them, or at the end of "
        "I or NAME, doubled), as a comma in split --outputs",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="share a float weight with the nearest weight of another model that differs by at "
        "most this amount relative to its largest magnitude (not a BatchNormalization variance "
        "or a divisor; default 0: bitwise equal only)",
    )
    p.add_argument(
        "--no-share", action="store_true", help="place the models side by side, share nothing"
    )
    p.add_argument(
        "--macs-shape",
        action="append",
        default=[],
        metavar="INPUT=D0,D1,...",
        help="dims to assume for a dynamic merged input when estimating MACs (repeatable), e.g. "
        "x=1,3,640,640 (or x:1x3x640x640, as --shapes elsewhere); an '=' in INPUT is written "
        "\\= (a backslash before one, or at its end, doubled), as in --input-map, and a ':' "
        "\\: where the x: form needs it (INPUT with a space), as --shapes takes it",
    )
    p.add_argument("--report", default=None, metavar="JSON", help="write the sharing report here")
    p.add_argument(
        "--verify",
        action="store_true",
        help="run every model and the merged one in onnxruntime on seeded feeds and compare",
    )
    p.set_defaults(run=run_merge)

    s = sub.add_parser(
        "split",
        help="extract the subgraph some outputs of a (merged) model need",
        description="Extract the nodes, inputs and weights that the chosen outputs need. "
        "Written atomically, only when complete.",
    )
    s.add_argument("input", help="input .onnx file")
    add_model_output(s, "output .onnx file")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--outputs",
        default=None,
        help="comma-separated tensor names to keep (a comma in a name is written \\,)",
    )
    what.add_argument(
        "--task",
        default=None,
        help="a task (output prefix) of a model written by 'graphopt merge': its outputs, with "
        "the names its inputs and outputs had in the task's own model",
    )
    s.add_argument(
        "--strip-prefix",
        default=None,
        metavar="P",
        help="remove P from the kept output names (some must start with it); with --task the "
        "inputs then keep their merged names, and --strip-prefix '' keeps the outputs' merged "
        "names too",
    )
    s.set_defaults(run=run_split)


def _input_map(specs: list[str], models: int) -> dict[int | str, dict[str, str]]:
    """{model index or prefix: {input: merged input}} of the `--input-map` specs, for
    `models` input models: an index past the last model is a `MergeError` naming the flag
    (merge_with_report's said "input_map key 5 is neither a model index nor a prefix"), and so
    is one input of a model mapped to two merged inputs (the later one won, silently; an index
    and a prefix naming one model are merge_with_report's to refuse). A ':' in I and an '='
    in NAME are escaped as `escaped_fields` reads them (an input named 'a=b' could not be
    mapped: 'a' was the name, 'b=...' the merged input)."""
    from graphopt.multitask import MergeError

    out: dict[int | str, dict[str, str]] = {}
    for spec in specs:
        fields = escaped_fields(spec, ":=")
        if len(fields) != 3 or not all(fields):
            raise MergeError(
                f"--input-map {spec!r}: expected I:NAME=MERGED, e.g. 1:x=image (an '=' in NAME "
                "written \\=)"
            )
        model, name, merged = fields
        # (isdigit: '²' is a digit int() refuses, a ValueError traceback)
        key: int | str = int(model) if model.isdecimal() else model
        if isinstance(key, int) and key >= models:
            raise MergeError(
                f"--input-map {spec!r}: there is no model {key}; the {models} models are "
                f"numbered 0..{models - 1} in the order given (or name a model by its prefix)"
            )
        mapped = out.setdefault(key, {})
        if mapped.get(name, merged) != merged:  # the later one replaced it, silently
            raise MergeError(
                f"--input-map {spec!r}: input {name!r} of model {model} is already mapped to "
                f"{mapped[name]!r}; map each input once"
            )
        mapped[name] = merged
    return out


def _macs_shapes(specs: list[str]) -> dict[str, list[int]]:
    """--macs-shape's INPUT=D0,D1,... (cut at the first '=' no backslash escapes) or, with no
    such '=', INPUT:D0xD1x... as --shapes reads it (cut at the last such ':'). In INPUT a
    backslash before '=', ':', ',' or a backslash is that character in either form (an input
    named 'a=b' could be given dims as 'a\\=b=1,3' but not as 'a\\=b:1x3', the form --shapes
    takes: any '=' made it the other; 'a:b c:1x3' as 'a\\:b c:1x3', as --shapes takes it)."""
    from graphopt._text import split_escaped
    from graphopt.backends.tensorrt import SPEC_ESCAPES, dim_value, parse_shapes
    from graphopt.errors import BackendError
    from graphopt.multitask import MergeError

    escapes = SPEC_ESCAPES + "="
    out: dict[str, list[int]] = {}
    for spec in specs:
        cut = split_escaped(spec, "=", escapes)
        if cut is None and ":" in spec:  # the --shapes syntax of optimize, bench and build
            try:
                shapes = parse_shapes([spec], "--macs-shape", escapes=escapes)
            except BackendError as e:  # ("bad --macs-shape ...")
                raise MergeError(str(e)) from e
            out.update({n: list(r.opt) for n, r in shapes.items()})
            continue
        name, dims = cut or (spec, "")
        # ASCII decimal digits within an int64, as --shapes reads them (dim_value): int() also
        # took '1_0' (10), '+1', full-width digits and sizes past 2**63; a '-' is read, for
        # merge's "every dim must be 1 or more"
        values = [dim_value(v) for v in dims.split(",")]
        if all(v is not None for v in values):
            out[name] = [v for v in values if v is not None]
        else:
            dims = ""
        if not (dims and name):
            raise MergeError(
                f"--macs-shape {spec!r}: expected INPUT=D0,D1,... or INPUT:D0xD1x..., "
                "e.g. x=1,3,640,640 or x:1x3x640x640 (an '=' or ':' in INPUT written \\= or "
                "\\:)"
            )
    return out


def run_merge(args: argparse.Namespace) -> int:
    from graphopt.backends.tensorrt import write_atomic  # a plain temp-file-and-rename writer
    from graphopt.multitask import MergeError, merge_with_report

    if args.report == STDOUT:  # a file named '-' was written, where -o - means stdout
        raise MergeError(
            "--report -: the JSON report is written to a file (its summary is printed); give a path"
        )
    # before merging: a folder, a missing folder, a name too long or a folder that takes no
    # file was said by the save (the long name: a traceback), after the merge
    if args.output != STDOUT:  # (standard output: main checked it is no terminal)
        check_writable(args.output, "-o", MergeError, make_parents=False)
    if args.report:  # the JSON report written over a model: the merged one, or an input
        models = [("-o", args.output)] + [("input", m) for m in args.inputs]
        refuse_model_path("--report", args.report, models, MergeError)
        # (it failed only after the merged model was written: a run that ended with an error
        # and a model on disk)
        check_writable(args.report, "--report", MergeError, make_parents=True)
    written = [("-o", args.output), ("--report", args.report)]
    refuse_writing_over_data_files(written, args.inputs, MergeError)
    # the merged model replaced that input (its outputs renamed, its head among others)
    refuse_model_path("-o", args.output, [("input", m) for m in args.inputs], MergeError)
    if args.no_share and args.tolerance:  # nothing is shared: no weights are compared
        raise MergeError("--tolerance is for shared weights; --no-share shares none")
    # (split(","): a prefix could hold no comma; an empty one, which keeps a model's output
    # names, is still one)
    prefixes = escaped_fields(args.prefix, ",", repeat=True) if args.prefix is not None else None
    if prefixes is not None and len(prefixes) != len(args.inputs):  # named the flag nowhere
        raise MergeError(
            f"--prefix {shown(args.prefix)}: {len(prefixes)} "
            f"prefix{'es' * (len(prefixes) != 1)} for {len(args.inputs)} models; give one per "
            "model, comma-separated"
        )
    try:
        merged, report = merge_with_report(
            args.inputs,
            prefixes=prefixes,
            input_map=_input_map(args.input_map, len(args.inputs)) or None,
            tolerance=args.tolerance,
            share=not args.no_share,
            macs_input_shapes=_macs_shapes(args.macs_shape) or None,
        )
    except MergeError as e:  # the API names its arguments; the user gave the flags
        raise _flag_error(e) from e
    if args.verify:
        _verify(args.inputs, merged, report)
    refuse_data_file_of_inputs(merged, args.output, args.inputs, MergeError)
    save_output(merged, args)
    print(report.summary())
    if args.report:
        try:
            write_atomic(args.report, (report.to_json() + "\n").encode())
        except OSError as e:
            raise MergeError(
                f"--report {shown(args.report)}: cannot write the report: {e.strerror or e}"
            ) from e
    print(f"wrote {output_name(args)}")
    return 0


# how merge_with_report's errors name its arguments, and the flags that give them
_API_FLAGS = (
    ("input_map ", "--input-map "),
    ("macs_input_shapes ", "--macs-shape "),
    ("tolerance ", "--tolerance "),
)


def _flag_error(e: Exception) -> Exception:
    """`e` as merge says it: merge_with_report's error about `input_map`,
    `macs_input_shapes` or `tolerance` names the flag the user gave (it said "macs_input_shapes
    names ['y'], not merged inputs" for --macs-shape y=1,3)."""
    from graphopt.multitask import MergeError

    text = str(e)
    for api, flag in _API_FLAGS:
        if text.startswith(api):
            return MergeError(flag + text[len(api) :])
    return e


def _verify(paths: list[str], merged, report) -> None:  # type: ignore[no-untyped-def]
    from graphopt.backends.onnxruntime import describe_feeds, example_feeds
    from graphopt.errors import BackendError, VerifyError
    from graphopt.ir import load_model

    # from the merged inputs: their types are the ones every model accepts (static dims win)
    feeds = example_feeds(merged)
    expected_all = []
    for path, task in zip(paths, report.tasks, strict=True):
        own = {name: feeds[merged_name] for name, merged_name in task.inputs.items()}
        try:  # (a model that fails on them itself was said as the merged model failing)
            expected_all.append(_run(load_model(path), own))
        except BackendError as e:
            raise VerifyError(
                f"--verify: {shown(path)} does not run on the seeded inputs "
                f"({describe_feeds(own)}) itself, so they cannot verify the merge (merge "
                f"without --verify): {e}"
            ) from e
    try:
        outputs = _run(merged, feeds)
    except BackendError as e:
        raise VerifyError(
            f"--verify: the merged model fails on seeded inputs every model runs "
            f"({describe_feeds(feeds)}): {e}"
        ) from e
    for path, task, expected in zip(paths, report.tasks, expected_all, strict=True):
        for name, value in expected.items():
            got = outputs[task.outputs[name]]
            worst, scale = _difference(value, got)
            print(f"verify: {shown(task.outputs[name])}: max abs diff {worst:.3g}")
            if worst > 1e-4 * max(1.0, scale):
                raise VerifyError(
                    f"merged output {task.outputs[name]!r} differs from {shown(path)}"
                )


def _run(model: onnx.ModelProto, feeds: dict[str, Any]) -> dict[str, Any]:
    """`backends.onnxruntime.run` of `model`; one over 2 GiB, which onnxruntime takes only from
    a file with external data (merge --verify of two 1.08 GB models was refused: 'it is over
    2 GiB, which onnxruntime takes only from a file'), is run from a temporary copy."""
    from graphopt.backends.onnxruntime import run, session
    from graphopt.ir.model_io import _over_two_gib

    if not _over_two_gib(model):
        return run(model, feeds)
    from graphopt.ir.model_io import temporary_file_with_external_data

    with temporary_file_with_external_data(model) as path:
        return run(session(path), feeds, model=model)  # (its names, for an error)


def _difference(expected: Any, got: Any) -> tuple[float, float]:
    """max |expected − got| (inf for another shape, a NaN on one side only, or any difference
    of a non-float output; equal values, NaN in both too, differ by 0), and max |expected|
    over its finite values. A sequence or map output (a list, a dict: it was an
    AttributeError traceback) is compared leaf by leaf, as `optimize --verify` does; another
    structure is inf."""
    import numpy as np

    from graphopt.backends.onnxruntime import _leaves_of, max_difference
    from graphopt.errors import VerifyError

    if not isinstance(expected, np.ndarray) or not isinstance(got, np.ndarray):
        try:
            expected, got = _leaves_of("", expected, got)
        except VerifyError:  # other lengths, keys or leaf shapes
            return float("inf"), 0.0
    if expected.shape != got.shape:
        return float("inf"), 0.0
    if not np.issubdtype(expected.dtype, np.inexact):
        # integers (indices, counts, labels) are exact: a tolerance relative to their largest
        # let index 1000001 pass for 1000000
        return (0.0 if np.array_equal(expected, got) else float("inf")), 0.0
    if not expected.size:
        return 0.0, 0.0
    return max_difference(expected, got)


def run_split(args: argparse.Namespace) -> int:
    from graphopt.errors import OptionError
    from graphopt.multitask import MergeError, split

    if args.output != STDOUT:  # before loading and splitting, not at the save
        check_writable(args.output, "-o", MergeError, make_parents=False)
    refuse_writing_over_data_files([("-o", args.output)], [args.input], MergeError)
    # the kept part replaced the whole model: the other outputs' nodes were lost
    refuse_model_path("-o", args.output, [("input", args.input)], MergeError)
    outputs = comma_list(args.outputs) if args.outputs else None
    if args.strip_prefix == "" and outputs:  # every name starts with it: the check below passed
        raise MergeError("--strip-prefix '': an empty prefix renames no output; leave it out")
    if args.strip_prefix and outputs and not any(o.startswith(args.strip_prefix) for o in outputs):
        # it renamed nothing, and the split exited 0 as if it had
        raise MergeError(
            f"--strip-prefix {shown(args.strip_prefix)}: no output of --outputs starts with "
            f"it ({', '.join(map(shown, outputs))})"
        )
    try:
        result = split(args.input, outputs, task=args.task, strip_prefix=args.strip_prefix)
    except OptionError as e:  # (--task: a prefix no task output starts with) said as the flag
        text = str(e)
        if not text.startswith("strip_prefix="):
            raise
        raise MergeError("--strip-prefix " + text.removeprefix("strip_prefix=")) from e
    refuse_data_file_of_inputs(result, args.output, [args.input], MergeError)
    save_output(result, args)
    print(
        f"{shown(args.input)}: kept {_node_count_text(result)} for outputs "
        f"{', '.join(shown(o.name) for o in result.graph.output)}; wrote {output_name(args)}"
    )
    return 0


def _node_count_text(model: onnx.ModelProto) -> str:
    """The model's node count as split says it, and where some are Constant nodes, the
    others apart: that is the count merge's report gives a task ("nodes" there leaves
    Constant nodes out), so split's 1481 nodes and merge's 607 read as the same model."""
    total = len(model.graph.node)
    constants = sum(
        n.op_type == "Constant" and n.domain in ("", "ai.onnx") for n in model.graph.node
    )
    if not constants:
        return counted(total, "node")
    others = total - constants
    return f"{counted(total, 'node')} ({constants} Constant, {others} others: merge's count)"
