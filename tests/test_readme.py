"""README.md against the code: every `graphopt COMMAND ...` line in it parses with that
command's parser as written (each flag exists, takes the arguments shown), the built-in
pipelines and passes it names are the ones that ship, and the `--verify` bounds it quotes are
the parser's defaults.

What it does not check: that the commands succeed on real models (the command lines name files
the reader makes), or the figures of the results tables (`benchmarks/results/` holds them)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from graphopt.cli import build_parser
from graphopt.passes import all_passes
from graphopt.pipeline import builtin_pipelines

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def command_lines(text: str) -> list[str]:
    """Every `graphopt COMMAND ...` line of the README's shell blocks, one string each:
    continuation lines joined, `# comments` and `| pipes` cut off, `[optional]` parts kept with
    their first alternative (`[--model a|b]` → `--model a`), `A  /  B` split in two."""
    commands = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"\s+#.*$", "", line)
            for part in re.split(r"\s+/\s+", line):
                start = part.find("graphopt ")
                if start < 0 or part[start - 1 : start] in ("'", "."):  # 'graphopt[tensorrt]'
                    continue
                command = part[start:].split(" | ")[0]
                command = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).split("|")[0], command)
                commands.append(" ".join(command.split()))
    return commands


def inline_flags(text: str) -> list[tuple[str, str]]:
    """(command, flag) of every `graphopt COMMAND ... --flag` in the README's inline code (the
    prose quotes commands in part: `graphopt build --int8 --cache`)."""
    found = []
    for code in re.findall(r"`(graphopt [a-z-]+[^`]*)`", text):
        words = code.split()
        found += [(words[1], w.split("=")[0]) for w in words[2:] if w.startswith("-")]
    return found


def _subparsers() -> dict:
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


def test_the_readme_shows_every_command():
    named = {shlex.split(c)[1] for c in command_lines(_readme())}
    missing = set(_subparsers()) - named
    assert not missing, f"commands no README shell block shows: {sorted(missing)}"


@pytest.mark.parametrize("command", command_lines(_readme()))
def test_readme_command_parses(command):
    argv = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse's error (exit 2) or --help (exit 0)
        pytest.fail(f"README command does not parse (exit {e.code}): {command}")
    assert args.command == argv[0]


@pytest.mark.parametrize(("command", "flag"), inline_flags(_readme()))
def test_readme_inline_flag_exists(command, flag):
    parsers = _subparsers()
    assert command in parsers, f"no command {command!r}"
    assert flag in parsers[command]._option_string_actions, f"graphopt {command} has no {flag}"


def test_the_command_reader_finds_what_is_there():
    text = (
        "```sh\ngraphopt demo [--model a|b]   # note\ngraphopt x -o - | cat\n"
        "graphopt y a \\\n    --z  /  graphopt w\n```\n`graphopt v --q=1 --r` and `graphopt u`"
    )
    assert command_lines(text) == [
        "graphopt demo --model a",
        "graphopt x -o -",
        "graphopt y a --z",
        "graphopt w",
    ]
    assert inline_flags(text) == [("v", "--q"), ("v", "--r")]


def test_pipeline_table_names_the_builtin_pipelines():
    section = _readme().split("## Pipelines", 1)[1].split("A user's file", 1)[0]
    table = re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.M)
    assert sorted(table) == sorted(builtin_pipelines())


def test_every_pass_is_named_and_every_named_pass_exists():
    text = _readme()
    section = text.split("### Fusion rules", 1)[1].split("\nEach of the four rule passes", 1)[0]
    named = set(re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", section))
    passes = set(all_passes())
    assert passes <= named, f"passes the README does not name: {passes - named}"
    # the section's other kebab-case names are pipelines or a rule group
    others = set(builtin_pipelines()) | {"ort-contrib", "ort-gelu"}
    assert named - passes <= others, (
        f"README names passes that do not exist: {named - passes - others}"
    )


def test_verify_bounds_are_the_parsers_defaults():
    text = _readme()
    atol, rtol = re.search(
        r"`--atol` \(([0-9e.-]+)\) \+ `--tolerance`\s+\(([0-9e.-]+)\)", text
    ).groups()
    args = build_parser().parse_args(["optimize", "m.onnx", "-o", "o.onnx"])
    assert (float(atol), float(rtol)) == (args.atol, args.tolerance)
