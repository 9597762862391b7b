"""`graphopt check --target tensorrt[=10|11] MODEL [--shapes ...]`: static compatibility check.

Reads the model and reports what TensorRT's ONNX parser of that version would refuse (errors)
or accept with a caveat (warnings), without TensorRT or a GPU. Exit 0: clean; 1: findings
(printed, one per line); 2: bad input. On a model of `inspect.PROGRESS_NODES` nodes or more
(80k nodes: seconds) a progress bar on stderr counts the nodes checked, once the graph is indexed
and its shapes inferred (`--no-progress`: none).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from graphopt.commands._common import add_shapes_argument, shown

if TYPE_CHECKING:
    import onnx

    from graphopt.backends.trt_support import TrtVersion


def add_parser(sub: argparse._SubParsersAction) -> None:
    from graphopt.commands.inspect import PROGRESS_NODES

    p = sub.add_parser(
        "check",
        # (input is optional to argparse, required by `run`: see `_input`)
        usage="%(prog)s [-h] [--target tensorrt[=VERSION]]\n"
        + " " * 22
        + "[--shapes NAME:DIMS [NAME:DIMS ...]] [--errors-only]\n"
        + " " * 22
        + "[--no-progress]\n"
        + " " * 22
        + "input",
        help="check a model against a runtime's ONNX support without running it",
        description="Static compatibility check. --target tensorrt (= tensorrt=10), tensorrt=10, "
        "tensorrt=11 or tensorrt=10.8: the ops, attributes, Q/DQ layout and dynamic shapes that "
        "version of TensorRT's ONNX parser accepts. Exit 0 when clean, 1 when there are "
        "findings (warnings too, unless --errors-only).",
    )
    p.add_argument("input", nargs="?", help="input .onnx file")
    p.add_argument(
        "--target",
        default="tensorrt",
        metavar="tensorrt[=VERSION]",
        help="runtime to check against (default: tensorrt, i.e. TensorRT 10)",
    )
    add_shapes_argument(
        p, "inputs that will get an optimization profile (their dynamic dims are fine)"
    )
    p.add_argument(
        "--errors-only", action="store_true", help="report errors only (warnings do not count)"
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help=f"no progress line on stderr (shown for models of {PROGRESS_NODES:,} nodes or more)",
    )
    p.set_defaults(run=run)


def parse_target(target: str) -> tuple[str, str]:
    from graphopt.errors import BackendError

    name, equals, version = target.partition("=")
    if name.strip().lower() != "tensorrt":
        raise BackendError(f"unknown --target {target!r}: use tensorrt, tensorrt=10 or tensorrt=11")
    if equals and not version.strip():  # (`--target tensorrt=$TRT` with TRT unset: checked as 10)
        raise BackendError(
            f"--target {shown(target)}: no TensorRT version after '='; use tensorrt, "
            "tensorrt=10 or tensorrt=11"
        )
    return "tensorrt", version.strip() or "10"


def target_version(target: str) -> TrtVersion:
    """The TensorRT version `--target` names, one that trt_support's tables model: 10.0 to
    10.15 and 11.0 to 11.5 (`LATEST_MINOR`); `tensorrt=10.99` was accepted and reported as
    "TensorRT 10.99", checked by the 10.15 rules, and `tensorrt=8` was refused without the
    versions there are. Patch and build numbers (10.8.0.43) are fine."""
    from graphopt.backends.trt_support import LATEST_MINOR, parse_version
    from graphopt.errors import BackendError

    _, text = parse_target(target)
    known = " and ".join(f"{major}.0 to {major}.{minor}" for major, minor in LATEST_MINOR.items())
    refusal = BackendError(
        f"--target {shown(target)}: graphopt models TensorRT {known}, not {shown(text)} "
        "(tensorrt=10 or tensorrt=11: the newest of each)"
    )
    try:
        version = parse_version(text)
    except BackendError as e:
        raise refusal from e
    if version.minor > LATEST_MINOR[version.major]:
        raise refusal
    return version


def run(args: argparse.Namespace) -> int:
    from graphopt.backends.tensorrt import parse_shapes
    from graphopt.backends.trt_check import check_tensorrt, summary

    _input(args)
    version = target_version(args.target)
    shapes = parse_shapes(args.shapes)
    from graphopt.ir import load

    loaded = load(args.input, copy=False)  # (handed to check_tensorrt as it is: not checked again)
    model = loaded.model
    _escape_node_names(model)
    if shapes:
        from graphopt.errors import BackendError
        from graphopt.ir.io_names import require_text_io_names

        require_text_io_names(model, args.input, BackendError)
        refuse_profiles_build_refuses(model, shapes)
    bar = _progress(args, len(model.graph.node))
    try:
        findings = check_tensorrt(
            loaded, version, shapes=shapes, progress=bar.nodes_checked if bar else None
        )
    finally:
        if bar:
            bar.close()
    counted = summary(findings)
    if args.errors_only:  # it said "0 warnings" for the warnings it left out
        hidden = sum(f.severity != "error" for f in findings)
        findings = [f for f in findings if f.severity == "error"]
        errors = summary(findings).split(",")[0]
        counted = f"{errors}; {hidden} warning{'s' * (hidden != 1)} not shown (--errors-only)"
    for f in findings:  # (one line each: trt_check escapes the model's strings in them)
        print(f)
    print(f"{shown(args.input)}: TensorRT {version}: {counted}")
    return 1 if findings else 0


_LABELS = ("check (shape facts)", "check (TensorRT rules)")
_WIDTH = max(map(len, _LABELS))  # (one width: a terminal's redraw covers the last label)


class _NodeBar:
    """The bar `inspect` draws (graphopt.quant.progress) over check's nodes, on a model of
    `PROGRESS_NODES` nodes or more: "check (shape facts)" from now while the model is indexed
    and its shapes inferred, then "check (TensorRT rules)" counting the nodes of the per-node
    walk (`check_tensorrt`'s `progress`), its clock restarted there (elapsed and ETA are the
    walk's), ended when the whole check is done."""

    def __init__(self, nodes: int) -> None:
        from graphopt.quant.progress import Progress

        self.bar = Progress(nodes, _LABELS[0].ljust(_WIDTH), show_start=True)
        self.bar.update(0)

    def nodes_checked(self, checked: int, total: int) -> None:
        if checked == 0:  # the walk starts (local functions inlined: maybe another count)
            self.bar.label = _LABELS[1].ljust(_WIDTH)
            self.bar.total = total
        self.bar.update(checked)

    def close(self) -> None:
        self.bar.close()


def _progress(args: argparse.Namespace, nodes: int) -> _NodeBar | None:
    from graphopt.commands.inspect import PROGRESS_NODES

    if args.no_progress or nodes < PROGRESS_NODES:  # (no stderr: the bar draws nothing)
        return None
    return _NodeBar(nodes)


def _input(args: argparse.Namespace) -> None:
    """A `BackendError` when no model is given (input is optional to argparse here, so that
    this is a GraphoptError). A model after `--shapes NAME:DIMS ...` is taken by the parser,
    as for every command with --shapes (`_common.add_shapes_argument`)."""
    from graphopt.errors import BackendError

    if args.input is None:
        raise BackendError(
            "the following arguments are required: input (see 'graphopt check --help')"
        )


def _escape_node_names(model: onnx.ModelProto) -> None:
    """Name each node protobuf handed over with a bytes name (not UTF-8 in the file) by its
    text, the bad bytes escaped, as inspect shows it: `check_tensorrt` gives the caller's
    node names back after indexing, and protobuf cannot set a bytes name that is not UTF-8
    (UnicodeDecodeError, a traceback). The model is check's own copy, read from the file."""
    for node in model.graph.node:
        if isinstance(node.name, bytes):
            node.name = node.name.decode("utf-8", "backslashreplace")


def refuse_profiles_build_refuses(model: onnx.ModelProto, shapes: dict) -> None:  # type: ignore[type-arg]
    """The `BackendError` `graphopt build` raises for these `--shapes`: a name that is no
    model input, or a rank or fixed dim the input's declaration contradicts (check said
    "0 errors" for them, and the build then failed)."""
    from graphopt.backends.tensorrt import fill_profile, unknown_profiles_error

    inits = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in inits]
    unknown = sorted(set(shapes) - {vi.name for vi in inputs})
    if unknown:
        raise unknown_profiles_error(unknown, [vi.name for vi in inputs], "model")
    for vi in inputs:
        tensor = vi.type.tensor_type
        if vi.name in shapes and tensor.HasField("shape"):
            declared = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
            fill_profile(vi.name, declared, shapes[vi.name])
