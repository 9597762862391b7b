"""Pieces several sub-commands share: the `--shapes` flag, the `-o` of a model (`-`: standard
output), comma-separated name lists, reading a `.npz` file of feeds, the full onnx.checker run
as a one-line error, the check that onnxruntime can name a model's inputs and outputs, the
check that an output file or folder can be written (made before any long work), and the
refusals of what a command would write over or ignore.

What it does not do: parse shapes (`graphopt.backends.tensorrt.parse_shapes` does), or turn a
read failure into a graphopt error (each command decides what a bad file means).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.external_data_helper import ExternalDataInfo

from graphopt._text import escaped_fields, shown
from graphopt.analysis.inference_aborts import full_check
from graphopt.errors import CHECKER_ERRORS, SaveError, VerifyError, first_line
from graphopt.ir.model_io import LoadedModel, default_data_location, link_loop

log = logging.getLogger(__name__)

# the `-o` that names standard output, as `-` does for onnx tools, `tar -f` and `curl -o`
STDOUT = "-"


class Given(argparse.Action):
    """Stores the value as `store` does and records the option in `namespace.given`, so that a
    command can refuse an option given where it would be ignored (its default stays as is)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        setattr(namespace, self.dest, values)
        given = getattr(namespace, "given", None) or set()
        given.add(self.option_strings[-1])
        namespace.given = given


# how a NAME:DIMS flag's help says what NAME may hold (graphopt.backends.tensorrt.parse_shapes)
SPEC_NAME_HELP = (
    "NAME ends at the last ':'; a ':' in NAME may be written \\: (and must where NAME has a "
    "space), a ',' \\,, and a backslash before either, or ending NAME, doubled"
)


def add_shapes_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """`--shapes NAME:DIMS ...`, repeatable, collected into one list (default empty).

    The command's model, its one positional argument (added before), may come after the
    values: `build --shapes x:1x3x640x640 model.onnx` failed with "the following arguments
    are required: input", --shapes (nargs +) having taken the model as one more NAME:DIMS.
    The parser (`_ModelAfterShapes`) now takes the one --shapes value that is no NAME:DIMS (no
    ':', or an existing path whose last ':' is followed by no dims: `_no_shape`) as the model
    when none was given otherwise (`--shapes a:1 m.onnx`, or
    `--shapes a:1 m.onnx --shapes b:2`); several such values are an error naming them, since
    which one is the model cannot be told (the last was taken, the others called "bad --shapes":
    `--shapes x:1 m.onnx b` said "bad --shapes 'm.onnx'"). A model given otherwise leaves such
    values to `parse_shapes`'s "bad --shapes" error. The help says so; usage and help show the
    model as the command declared it."""
    parser.add_argument(
        "--shapes",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME:DIMS",
        help=f"{help} (repeatable; the model may follow the values: --shapes NAME:DIMS MODEL; "
        f"{SPEC_NAME_HELP})",
    )
    model_may_follow(parser, "--shapes")


def model_may_follow(parser: argparse.ArgumentParser, option: str) -> None:
    """Let the command's model, its one positional argument (added before), come after the
    values of `option`, a NAME:DIMS flag of nargs + added before (`add_shapes_argument`'s
    --shapes, optimize's --input-shape): its one value that is no NAME:DIMS is taken as the
    model (`_ModelAfterShapes`). A parser without exactly one positional is left as it is."""
    positionals = [action for action in parser._actions if not action.option_strings]
    if len(positionals) != 1:  # no model, or more than one positional: nothing to take
        return
    if not isinstance(parser, _ModelAfterShapes):
        base = type(parser)  # (the CLI's own parser class: its one-line errors)
        parser.__class__ = type(base.__name__, (_ModelAfterShapes, base), {})
    assert isinstance(parser, _ModelAfterShapes)
    if not hasattr(parser, "spec_options"):
        parser.spec_options = []
    parser.model_argument = positionals[0]
    parser.model_declared = (positionals[0].nargs, positionals[0].required)
    spec = next(action for action in parser._actions if option in action.option_strings)
    parser.spec_options.append((option, spec.dest))


class _ModelAfterShapes(argparse.ArgumentParser):
    """A command's parser whose model (`model_argument`, declared `model_declared`: its
    nargs and required) may be the last value of one of its NAME:DIMS flags
    (`spec_options`: (option, dest)), or their one value that is no NAME:DIMS
    (`model_may_follow`)."""

    model_argument: argparse.Action
    model_declared: tuple[Any, bool]
    spec_options: list[tuple[str, str]]

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        model = self.model_argument
        # optional while argparse parses: a model --shapes took is no missing argument yet
        model.nargs, model.required = "?", False
        try:
            parsed, extras = super().parse_known_args(args, namespace)
        finally:
            model.nargs, model.required = self.model_declared
        loose = [
            (option, values, value)
            for option, dest in self.spec_options
            for values in [getattr(parsed, dest, None) or []]
            for value in values
            if _no_shape(value)
        ]
        if getattr(parsed, model.dest, None) is None and loose:
            # the one value that is no NAME:DIMS, last or between two --shapes
            # (`--shapes a:1 m.onnx --shapes b:2`); of several, none is taken for the model
            if len(loose) > 1:
                options = list(dict.fromkeys(option for option, _, _ in loose))
                given = ", ".join(  # ("--input-shape 'a', --shapes 'b', 'c'")
                    f"{option} "
                    + ", ".join(repr(value) for each, _, value in loose if each == option)
                    for option in options
                )
                self.error(
                    f"{given}: {len(loose)} values are no NAME:DIMS and no model was given "
                    "otherwise, so which one is the model cannot be told; give the model "
                    f"before {' and '.join(options)}, each shape as NAME:DIMS"
                )
            _, values, value = loose[0]
            values.remove(value)
            setattr(parsed, model.dest, value)
        if getattr(parsed, model.dest, None) is None and model.required:
            # argparse's own words for it (exit 2, one line)
            self.error(f"the following arguments are required: {model.metavar or model.dest}")
        return parsed, extras

    def format_usage(self) -> str:
        with self._model_as_declared():
            return super().format_usage()

    def format_help(self) -> str:  # (-h is handled while parsing: the model optional then)
        with self._model_as_declared():
            return super().format_help()

    @contextmanager
    def _model_as_declared(self) -> Iterator[None]:
        model = self.model_argument
        now = (model.nargs, model.required)
        model.nargs, model.required = self.model_declared
        try:
            yield
        finally:
            model.nargs, model.required = now


# what follows a NAME:DIMS spec's last ':' (dims, or MIN,OPT,MAX)
_DIMS_TEXT = re.compile(r"[0-9xX,\s]*")


def _no_shape(value: str) -> bool:
    """Whether the --shapes value `value` is no NAME:DIMS, and so may be the model: it has no
    ':', or it is an existing path whose text after its last ':' is no dims (a model in a
    folder named with a colon, 'runs:3/m.onnx', or Windows' 'C:\\m.onnx': taken as a shape,
    it left the command without its model, "the following arguments are required")."""
    if ":" not in value:
        return True
    return not _DIMS_TEXT.fullmatch(value.rpartition(":")[2]) and os.path.exists(value)


def add_model_output(parser: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    """`-o/--output` of a command that writes one model, which `-` writes to standard output
    (`graphopt.cli.main` refuses it on a terminal and sends the command's report to stderr);
    the command saves it with `save_output`."""
    parser.add_argument(
        "-o",
        "--output",
        required=required,
        help=f"{help} ('-': the model's bytes on standard output, which must not be a "
        "terminal; the report goes to stderr)",
    )
    parser.set_defaults(output_stream=True)


def save_output(
    model: onnx.ModelProto, args: argparse.Namespace, *, external_data: bool | None = None
) -> None:
    """`graphopt.ir.save_model(model, args.output, external_data=...)`, or for `-o -` the
    model's bytes on the standard output `graphopt.cli.main` kept in `args.stdout`, in one
    piece (a stream has no folder for a data file; a model over 2 GiB is a `SaveError`)."""
    from google.protobuf.message import EncodeError

    from graphopt.ir import save_model
    from graphopt.ir.model_io import serialized_pieces

    if args.output != STDOUT:
        from graphopt.ir.model_io import OLD_MODEL_PUT_BACK, is_stream

        straight = is_stream(Path(args.output))  # a device or pipe: no file to keep whole
        before = file_identity(args.output)
        try:
            save_model(model, args.output, external_data=external_data)
            args.interrupted = _written(args)
        except BaseException as e:
            if getattr(e, OLD_MODEL_PUT_BACK, False):
                pass  # the old model is back: nothing was written, whatever its file's identity
            elif straight:  # interrupted: what went out cannot be taken back (as for `-o -`)
                args.interrupted = (
                    f"{shown(args.output)} is a device or pipe, written straight: what it got "
                    "may be part of the model, not a whole one: discard it"
                )
            elif file_identity(args.output) != before:
                # a signal after the save renamed the model into place (its last step), before
                # it returned: the model is written, whole ("nothing was written" was said)
                args.interrupted = _written(args)
            raise
        return
    if external_data:
        log.info("-o - is standard output: the model is written in one piece")
    try:  # every piece now: `serialized_pieces` serializes as it is read, and the standard
        # output cannot take back what it got before the 2 GiB check fails
        pieces = list(serialized_pieces(model))
    except (EncodeError, ValueError) as e:  # protobuf refuses messages over 2 GiB
        raise SaveError(
            f"-o -: cannot serialize the model ({e}); one over 2 GiB needs external data "
            "beside a file: give -o FILE"
        ) from e
    stream = (args.stdout if hasattr(args, "stdout") else sys.stdout).buffer
    sent = False  # whether a piece may have gone out (a write begun)
    try:
        for piece in pieces:
            sent = True
            stream.write(piece)
        stream.flush()
        args.interrupted = _written(args)
    except BrokenPipeError:  # the reader went away: graphopt.cli.main ends quietly
        raise
    except OSError as e:  # a full disk behind `> file`, as save_model says of a path
        raise SaveError(
            f"-o -: cannot write the model to standard output: {e.strerror or e}"
        ) from e
    except BaseException:  # Ctrl-C or SIGTERM mid-model: what went out cannot be taken back
        if sent:  # (graphopt.cli.main says this instead of "nothing was written")
            args.interrupted = (
                "part of the model had gone to standard output; what its reader got is not "
                "a whole model: discard it"
            )
        raise


def _written(args: argparse.Namespace) -> str:
    """What `graphopt.cli.main` says of a run interrupted once the model is saved, until the
    command says more (quantize: its cache): the model is whole; the rest was cut short."""
    return f"wrote {output_name(args)}; only what came after (the report) was cut short"


def file_identity(path: str) -> tuple[int, int, int] | None:
    """(device, inode, mtime in ns) of the file at `path`, None when there is none or it is
    standard output (`-`), a device or a pipe: a save renames a new file into place, so a
    regular file's identity changes the moment the save is done, and only then."""
    from graphopt.ir.model_io import is_stream

    if path == STDOUT or is_stream(Path(path)):
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def output_name(args: argparse.Namespace) -> str:
    """How a command's report names where `-o` wrote the model: its path, or "standard
    output" for `-o -`."""
    return "standard output" if args.output == STDOUT else shown(args.output)


def comma_list(text: str | None) -> list[str]:
    """'a,b,,c' → ['a', 'b', 'c']; None or '' → []. A name with a comma in it is written
    with the comma escaped, `a\\,b` (and a backslash that ends a name or precedes a comma,
    doubled: `a\\\\`): `--outputs` could not name tf2onnx's 'concat,1'. A backslash before
    anything else is itself (Windows-style names): `escaped_fields`."""
    return [n for n in escaped_fields(text or "", ",", repeat=True) if n]


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a `.npz` file, by key (loaded into memory, the file closed); ValueError
    when the file is not an `.npz` archive (e.g. a single `.npy` array) or cannot be read, its
    text naming no path (the caller names the file, with its flag). A folder or a special file
    (a FIFO: numpy's read waited for ever) is a ValueError before anything reads it."""
    from graphopt.arrays import load_arrays
    from graphopt.ir.model_io import special_file_kind

    if os.path.isdir(path):
        raise ValueError("it is a folder, not an .npz file")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(
            f"it is not a regular file ({special_file_kind(path) or 'a special file'})"
        )
    data = load_arrays(path)  # a ValueError for a file numpy cannot read (an empty one too)
    if not isinstance(data, dict):
        raise ValueError("not an .npz archive of named arrays (np.savez writes one)")
    return data


def require_utf8_io_names(
    model: onnx.ModelProto, where: str, error: type[Exception] = VerifyError
) -> None:
    """An `error` naming (after `where`, the model's file) the first graph input or output
    whose name is not UTF-8 text: protobuf hands such a name over as bytes, and onnxruntime's
    Python API cannot decode it (a UnicodeDecodeError from every session that runs it)."""
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for vi in values:
            if isinstance(vi.name, bytes):
                raise error(
                    f"{where}: graph {kind} {vi.name!r} is not UTF-8 text: onnxruntime's "
                    "Python API cannot name it, so the model cannot be run from here (rename it)"
                )


def check_model(model: onnx.ModelProto, what: str = "the optimized model") -> None:
    """`onnx.checker.check_model(full_check=True)`; a failure is a one-line `VerifyError`."""
    try:
        full_check(model)
    except CHECKER_ERRORS as e:
        # (a ValueError: full_check's shape inference on an unknown element type, e.g. 99)
        raise VerifyError(f"{what} fails onnx.checker: {first_line(e)}") from e


def given_options(options: Iterable[tuple[str, object]]) -> list[str]:
    """The options of `options` ((option, value)) that were given: value not None or False
    (`--scale 0` is given)."""
    return [option for option, value in options if value is not None and value is not False]


def refuse_image_options_without_images(
    options: Iterable[tuple[str, object]],
    files: Iterable[Path],
    image_suffixes: Iterable[str],
    data: str,
    error: type[Exception],
) -> None:
    """An `error` naming the first image option given ((option, value); None or False: not
    given) when none of `files`, the data `data` names, is an image: the options preprocess
    images only, and `.npy`/`.npz` feeds are fed as they are, so `--mean 0.5` over a folder of
    arrays was ignored without a word."""
    given = given_options(options)
    if not given:
        return
    suffixes = tuple(s.lower() for s in image_suffixes)
    if any(path.suffix.lower() in suffixes for path in files):
        return
    raise error(
        f"{given[0]} preprocesses images, but {data} holds only .npy/.npz feeds, which are fed "
        f"as they are: drop {given[0]} (or give images)"
    )


def resolved(path: str | os.PathLike[str]) -> Path:
    """`path` absolute, its symbolic links followed as far as they go: `Path.resolve`, but a
    link loop (`ln -s x x`) ends the walk where it is, as `os.path.realpath` does, where
    Python 3.11's `resolve` raised RuntimeError ("Symlink loop from ...", a traceback from
    every check of `-o`, `--inputs`, `-p` against the files a command reads)."""
    return Path(os.path.realpath(path))


def refuse_model_path(
    option: str, path: str, models: Iterable[tuple[str, str]], error: type[Exception]
) -> None:
    """An `error` when `path`, which `option` writes, is the path of one of `models` ((what,
    model path), checked in order): writing it would replace that model."""
    target = resolved(path)
    for what, model in models:
        if resolved(model) == target:
            raise error(f"{option} {shown(path)} is the {what} model's path; give another")


def refuse_writing_over_read_files(
    written: Iterable[tuple[str, str | None]],
    read: Iterable[tuple[str, str | None]],
    error: type[Exception],
) -> None:
    """An `error` when a file a command writes ((option, path); None: not given) is a file it
    reads: `-o p.yaml -p p.yaml` replaced the pipeline with the model, `-o f.npz --inputs f.npz`
    the feeds. Only read paths that are existing files count (a --pipeline may be a built-in
    name)."""
    sources = [(option, resolved(path)) for option, path in read if path]
    sources = [(option, path) for option, path in sources if path.is_file()]
    for option, path in written:
        if not path:
            continue
        target = resolved(path)
        for source, other in sources:
            if target == other:
                raise error(f"{option} {shown(path)} is the {source} file; give another")


def _data_files_of(model: str) -> set[Path]:
    """The external data files (resolved) the model file `model` reads; none for a model that
    is no regular file or cannot be read (the command's own load says why, later)."""
    from graphopt.ir.model_io import _external_tensors

    if not Path(model).is_file():  # a FIFO blocked onnx.load, /dev/zero filled memory
        return set()
    try:
        proto = onnx.load(model, load_external_data=False)
    except Exception:
        return set()
    folder = resolved(model).parent
    return {resolved(folder / ExternalDataInfo(t).location) for t in _external_tensors(proto)}


def refuse_data_file_of_inputs(
    model: onnx.ModelProto, output: str, models: Iterable[str], error: type[Exception]
) -> None:
    """An `error` when `model`, saved at `output` with `save_output`'s default (external data
    only over 2 GiB, in `<output>.data`), would write that data file over an external data
    file of one of the input `models`: merge and split replaced an input's weights with the
    output's, and the input then read bytes that are not its own. A model saved in one piece
    (under 2 GiB, or to standard output) writes no data file."""
    from graphopt.ir import model_io

    if output == STDOUT:
        return
    data = _data_file_beside(output)
    if not data.is_file() or not any(data in _data_files_of(m) for m in models):
        return
    if model_io._over_two_gib(model):
        raise error(
            f"-o {shown(output)}: the model is over 2 GiB, so its weights go to "
            f"{shown(data.name)}, which is an external data file of an input model; give "
            "another output name"
        )


def _data_file_beside(output: str) -> Path:
    """The data file (resolved) `save_model` writes for a model saved at `output`: beside the
    path as given, a symbolic link's own folder and name (`<link name>.data`), not its
    target's. Taken from the target, `-o model.onnx`, a link in the input's folder to a file
    elsewhere, passed, and the save wrote model.onnx.data over the input's weights."""
    given = Path(output)
    return resolved(given.parent if str(given.parent) else ".") / default_data_location(given)


def refuse_writing_over_data_files(
    written: Iterable[tuple[str, str | None]], models: Iterable[str], error: type[Exception]
) -> None:
    """An `error` when a file a command writes ((option, path); None: not written) is an
    external data file of one of the input `models`: merge, split, quantize (--cache) and build
    wrote over it, and the input model was left pointing at bytes that are not its weights.
    Only paths that exist can be one, so the models' headers are read only for those."""
    # (the path as given is named: `-o ext/ext.data` was said as `-o ext.data`)
    existing = [(option, given, resolved(given)) for option, given in written if given]
    existing = [(option, given, path) for option, given, path in existing if path.is_file()]
    for model in models if existing else ():
        files = _data_files_of(model)
        for option, given, path in existing:
            if path in files:
                raise error(
                    f"{option} {shown(given)}: is an external data file of the input "
                    f"model {shown(model)}; give another"
                )


def refuse_writing_over_input_data(loaded: LoadedModel, output: str, external: bool | None) -> None:
    """Refuse an output that would overwrite an external data file the input model reads: -o
    naming that file, or (writing external data) an output whose `<name>.data` is one of them.
    The input model would be left pointing at bytes that are not its weights. Writing over the
    input model itself is fine: its data file is then rewritten with it. Nor may the output's
    data file be the input model's own file (`optimize net.data -o net --external-data yes`
    wrote the weights over the model net.data, exit 0)."""
    out = resolved(output)
    data = _data_file_beside(output)
    source = resolved(loaded.source) if loaded.source is not None else None
    if external and data == source:
        raise SaveError(
            f"{shown(output)}: its data file {shown(data.name)} is the input model; choose "
            "another name"
        )
    same_model = source is not None and out == source
    if not loaded.data_files:
        return
    if out in loaded.data_files:
        raise SaveError(
            f"{shown(output)}: is an external data file of the input model; choose another"
        )
    if external and not same_model and data in loaded.data_files:
        raise SaveError(
            f"{shown(output)}: its data file {shown(data.name)} is the input model's; choose "
            "another name"
        )


def check_writable(path: str, what: str, error: type[Exception], *, make_parents: bool) -> None:
    """An `error` ("<what> <path>: <problem>", one line) unless a file can be created at
    `path`: it is not a folder, its name (and those of the folders to make) fits its folder,
    and its folder exists (or, with `make_parents`, its nearest existing ancestor is a folder)
    and takes a new file (probed by creating and removing one; permission bits alone say
    nothing for root or a read-only mount). A path the system will not look up (a name over
    255 bytes) is one line too: it was a traceback (pathlib's is_dir raises ENAMETOOLONG). A
    device or pipe (`/dev/null`, a FIFO) passes: it is written straight, not through its
    folder; a symbolic link's target folder must take the file too (it is what is replaced).
    Each command calls it for its outputs before loading, optimizing or calibrating, so that a
    typo costs a second, not a run; it writes nothing."""
    try:
        _check_writable(path, what, error, make_parents=make_parents, folder=False)
    except OSError as e:
        raise error(f"{what} {shown(path)}: {_reason(e)}") from e


def check_writable_folder(path: str, what: str, error: type[Exception]) -> None:
    """`check_writable` for an output folder (made with its parents when missing): an `error`
    when `path` is there and no folder, a name of the folders to make does not fit, or the
    folder (its nearest existing ancestor, when missing) takes no new file."""
    try:
        _check_writable(path, what, error, make_parents=True, folder=True)
    except OSError as e:
        raise error(f"{what} {shown(path)}: {_reason(e)}") from e


def _reason(e: OSError) -> str:
    return os.strerror(e.errno) if e.errno else str(e)


def _check_writable(
    given: str, what: str, error: type[Exception], *, make_parents: bool, folder: bool
) -> None:
    from graphopt.ir.model_io import is_stream, special_file_kind
    from graphopt.quant.cache import name_too_long

    if not given:  # Path("") is "."; it was "-o . is a folder" for -o ''
        raise error(f"{what} is empty; give a {'folder' if folder else 'file'} name")
    target = Path(given)
    path = shown(target)  # (as quantize's messages have always named it)
    if folder:
        if os.path.lexists(target) and not target.is_dir():
            kind = (
                "a file"
                if target.is_file()
                else special_file_kind(target) or "a link to nothing"  # (a dangling link)
            )
            raise error(f"{what} {path} is {kind}, not a folder; give a folder")
        where = target
    else:
        # Path("out/") and Path("out/.") are "out": a file was written at "out"
        names_folder = given.endswith(("/", os.sep)) or os.path.basename(given) in (".", "..")
        if names_folder and not target.is_dir():
            raise error(f"{what} {shown(given)} names a folder; give a file name")
        if target.is_dir():
            raise error(f"{what} {path} is a folder; give a file name")
        if is_stream(target):  # written straight (graphopt.ir.model_io.write_atomically)
            return
        where = target.parent
    if make_parents:
        while not where.exists() and where != where.parent:
            where = where.parent
    if not where.is_dir():
        problem = "is not a folder" if where.exists() else "does not exist"
        raise error(f"{what} {path}: {shown(where)} {problem}")
    too_long = name_too_long(target, where)  # the file's, and new folders'
    if too_long is not None:
        name, size, limit, _ = too_long
        raise error(
            f"{what} {path}: the name {name[:40]!r}... is {size} bytes, more than folder "
            f"{shown(where)} takes ({limit})"
        )
    folders = [where]
    if not folder and target.is_symlink():  # the file the link points to is replaced
        if link_loop(target):  # (the save's own resolve raised RuntimeError, a traceback)
            raise error(f"{what} {path}: is a symbolic link loop; give a file name")
        linked = Path(os.path.realpath(target))
        if not linked.parent.is_dir():
            raise error(f"{what} {path}: links to {shown(linked)}, whose folder does not exist")
        folders.append(linked.parent)
    for place in folders:
        try:
            with tempfile.TemporaryFile(dir=place, prefix=".graphopt-probe-"):
                pass
        except OSError as e:
            raise error(
                f"{what} {path}: cannot write in folder {shown(place)} ({_reason(e)})"
            ) from e


def check_data_file_name(output: str) -> None:
    """`check_writable` for the external data file `<name>.data` that `save_model` writes
    beside a model saved at `output` with external data: its name is 5 bytes longer than the
    model's, so a model name of 251..255 bytes fits and its data file's does not (a
    `SaveError` at the save, after the whole run)."""
    target = Path(output)
    data = target.parent / default_data_location(target)
    check_writable(str(data), "-o's data file", SaveError, make_parents=False)
