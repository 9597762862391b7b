"""The `graphopt` command line (also `python -m graphopt`).

Each sub-command lives in `graphopt/commands/<name>.py` with `add_parser(subparsers)` and
`run(args) -> int`. Every `GraphoptError` becomes one line on stderr and exit code 2; nothing is
written unless it is complete (outputs are saved atomically).

`-o -` writes the model to standard output (optimize, quantize, merge, split, demo), the
command's report then going to stderr; it is refused in one line on a terminal, and by the
commands that write files beside their output (build's engine sidecar, distill's folder).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import signal
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphopt import __version__
from graphopt._text import escaped, shown

# Modules that define sub-commands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "graphopt.commands.optimize",
    "graphopt.commands.inspect",
    "graphopt.commands.quantize",
    "graphopt.commands.build",
    "graphopt.commands.bench",
    "graphopt.commands.check",
    "graphopt.commands.merge",
    "graphopt.commands.distill",
    "graphopt.commands.demo",
)


class _Parser(argparse.ArgumentParser):
    commands: dict[str, argparse.ArgumentParser]  # the sub-commands' parsers (build_parser)

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse exits 2 already; keep it to one line plus the usage hint.
        # "graphopt optimize: error: ...", as a GraphoptError of the command reads
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="graphopt",
        description="Graph-level compiler passes for ONNX models: fuse, simplify, quantize to "
        "INT8 (max, TensorRT entropy, percentile or MSE calibration), and hand off to TensorRT "
        "or onnxruntime.",
        epilog="Exit status: 0 done; 1 'check' found errors or warnings; 2 bad input or a "
        "failed run (one line on stderr, no output written); 130 interrupted (143: SIGTERM). "
        "'graphopt COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"graphopt {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log progress (-vv: debug); before COMMAND: graphopt -v optimize ...",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # command not built yet
                continue
            raise
        module.add_parser(sub)
    parser.commands = dict(sub.choices)
    return parser


_VERBOSE = re.compile(r"-v+|--verbose")  # the top-level flag, given after the command


def main(argv: Sequence[str] | None = None) -> int:
    # (here, not at the top: importing graphopt.cli, which the `graphopt` script does before
    # run_cli's Ctrl-C handler runs, imports neither onnx nor numpy)
    from graphopt.errors import GraphoptError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command's parser: its usage, not the top-level one's
        commands: dict[str, argparse.ArgumentParser] = getattr(parser, "commands", {})
        where = commands.get(args.command or "", parser)
        if any(_VERBOSE.fullmatch(u) for u in unknown):  # only the top level takes it
            where.error(
                f"unrecognized arguments: {' '.join(unknown)}; -v/--verbose goes before the "
                f"command: graphopt -v {args.command} ..."
            )
        where.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    handler = logging.StreamHandler()  # (stderr; basicConfig adds it only where none is)
    handler.setFormatter(_OneLineFormatter("graphopt: %(message)s"))
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), handlers=[handler])
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: signals stay as they are
        previous = None
    stdout = sys.stdout
    args.stdout = stdout  # where `-o -` writes the model (commands._common.save_output)
    try:
        _refuse_stdout_output(args, stdout)
        if _writes_to_stdout(args):  # the model's bytes go there: the report goes to stderr
            sys.stdout = sys.stderr
        sys.stdout = _ReportStream(sys.stdout)
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a reader gone early shows here, not in Python's flush at exit
        return code
    except _ReportNotWritten as e:  # `> /dev/full`, a full disk: the report is not whole
        print(f"graphopt {args.command}: error: {escaped(str(e))}", file=sys.stderr)
        _discard_stdout(stdout)
        return 2
    except BrokenPipeError:
        # `graphopt ... | head`: end quietly as `cat` does (128 + SIGPIPE), no traceback
        _discard_stdout(stdout)
        return 128 + getattr(signal, "SIGPIPE", 13)  # 13 on POSIX; Windows has no SIGPIPE
    except GraphoptError as e:
        # escaped: one line even where a path or name the message holds has a line break
        # that no `shown` escaped (a rule file in a folder 'a\nb' split the error in two)
        print(f"graphopt {args.command}: error: {escaped(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"graphopt {args.command}: interrupted; {_kept(args)}", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"graphopt {args.command}: terminated; {_kept(args)}", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        sys.stdout = stdout
        if previous is not None:  # (None: a handler set from C, which cannot be set back)
            signal.signal(signal.SIGTERM, previous)


class _OneLineFormatter(logging.Formatter):
    """A warning or progress line on stderr is one line: a path or name it holds with a line
    break in it is escaped as `shown` writes it."""

    def format(self, record: logging.LogRecord) -> str:
        return escaped(super().format(record))


class _ReportNotWritten(Exception):
    """Writing the command's report to standard output failed (not a reader gone early)."""


class _ReportStream:
    """Standard output as a command prints its report: a write that fails with an OSError
    other than a broken pipe (`> /dev/full`, a full disk) is `_ReportNotWritten`, which `main`
    turns into one line on stderr, exit 2 (it was a traceback). No standard output at all
    (`>&-`: sys.stdout is None) takes the report and drops it, as `print` does; it was an
    AttributeError traceback. A character its encoding cannot hold is escaped (\\u20ac), as
    Python's stderr escapes it. Anything else is the stream's."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        if self._stream is None:  # closed (`>&-`) or none (pythonw): dropped, as print drops it
            return len(text)
        try:
            return int(self._guard(self._stream.write, text))
        except UnicodeEncodeError:
            # an output encoding that cannot hold a character of the report (a path 'o€.onnx'
            # on an ASCII or cp1252 stdout): it was a traceback, exit 1, after the model was
            # written. The text goes out with those characters escaped, as stderr writes them.
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            safe = text.encode(encoding, "backslashreplace").decode(encoding)
            self._guard(self._stream.write, safe)
            return len(text)

    def flush(self) -> None:
        if self._stream is not None:
            self._guard(self._stream.flush)

    def _guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _ReportNotWritten(f"cannot write standard output: {e.strerror or e}") from e

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _discard_stdout(stdout: Any) -> None:
    """Point the process's standard output (`stdout`, not the report stream: with `-o -` that
    is stderr) at the null device: Python flushes it once more at exit, and what it still holds
    could not be written (a reader gone, a full disk). A stream with no file (a capture) is
    left as it is."""
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _refuse_stdout_output(args: argparse.Namespace, stdout: object) -> None:
    """A `SaveError` for `-o -` (standard output) from a command that writes no model there
    (it wrote a file named '-'), when there is no standard output or it takes text only (no
    binary `buffer`), or when it is a terminal: a model's bytes on a screen are no use to
    anyone."""
    from graphopt.commands._common import STDOUT
    from graphopt.errors import SaveError

    if getattr(args, "output", None) != STDOUT:
        return
    if not getattr(args, "output_stream", False):
        raise SaveError(
            f"-o -: {args.command} writes files, not a stream to standard output; give a path"
        )
    if stdout is None:  # pythonw, or closed with `>&-`
        raise SaveError("-o -: this process has no standard output; give a file name")
    if not hasattr(stdout, "buffer"):  # a text stream (io.StringIO, a notebook's): no bytes
        raise SaveError(
            "-o -: standard output here takes text, not a model's bytes; give a file name"
        )
    try:
        terminal = stdout.isatty()  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        terminal = False
    if terminal:
        raise SaveError(
            "-o -: standard output is a terminal; redirect it ('> model.onnx', '| ...') or "
            "give a file name"
        )


def _writes_to_stdout(args: argparse.Namespace) -> bool:
    """Whether the command's `-o` is this process's standard output (`-o /dev/stdout` into a
    pipe): the model is written through it, and the lines a command prints after saving
    ("wrote ...") ended up inside the model's bytes, which no reader could load. A terminal or
    /dev/null (a character device) is left as it is: nothing reads a model from it."""
    output = getattr(args, "output", None)
    if not isinstance(output, str):
        return False
    if output == "-":  # (commands._common.STDOUT; _refuse_stdout_output checked it)
        return True
    try:
        target, ours = os.stat(output), os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no such file yet; stdout closed/replaced
        return False
    same = (target.st_dev, target.st_ino) == (ours.st_dev, ours.st_ino)
    return same and not stat.S_ISCHR(ours.st_mode)


def _kept(args: argparse.Namespace) -> str:
    """What an interrupted run leaves: a command that keeps its progress (distill-targets)
    says so with `set_defaults(interrupted=...)`; optimize's --dump-dir holds the dumps made
    so far; the others write nothing until complete."""
    kept = getattr(args, "interrupted", None)
    if kept:
        return str(kept)
    dumps = getattr(args, "dump_dir", None)  # optimize --dump-dir: written as the passes ran
    if dumps and any(Path(dumps).glob("*.onnx")):
        return (
            f"the output was not written; {shown(dumps)} holds the dumps of the passes run so far"
        )
    return "nothing was written"


class _Terminated(BaseException):
    """SIGTERM (`kill`, `timeout`, a CI job cancelled) raised where the program stands, so that
    a save under way removes its temporary file as on Ctrl-C; the default action ended the
    process at once and left it (a whole model's size) beside the output."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def run_cli() -> None:
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C before main's own handler: the parser, its imports
        print("graphopt: interrupted; nothing was written", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":  # `python -m graphopt.cli ...` as `python -m graphopt ...`
    run_cli()
