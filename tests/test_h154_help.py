"""H154: the CLI's --help texts read as a new user reads them, checked against the code.

Found: the exit statuses were said nowhere but in `check`'s description (which left out that
warnings count); `-v` after the command was "unrecognized arguments: -v" with no word that it
goes before; optimize's -p named no default and three of the six built-in pipelines; quantize
gave no default for --scale (1: pixels 0..255, where distill-targets' is 1/255), --mean, --std,
--pipeline ("per target") and no keys for --preprocess; bench --threads gave no default;
build --timing-cache did not say it is written back, nor --calib how images are fed;
distill-targets' description named TEACHER and DIR, which its usage does not have; inspect's
promised the post-dominator tree, of which it prints a summary. Every test here failed before
its fix.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from graphopt.cli import _kept, build_parser, main
from graphopt.pipeline import builtin_pipelines
from graphopt.quant.data import PreprocessSpec
from tests.test_cli_review3 import one_line_error


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # no help line wrapped (at a hyphen, too)


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_every_option_with_a_default_value_says_its_default() -> None:
    parser = build_parser()
    silent = [
        f"{command} {action.option_strings[-1]}"
        for command, sub in parser.commands.items()  # type: ignore[attr-defined]
        for action in sub._actions
        if action.option_strings
        and action.help not in (None, argparse.SUPPRESS)
        and action.default is not None
        and action.default is not False  # (0 == False: an int default of 0 is a default)
        and action.default not in ([], "", argparse.SUPPRESS)
        and "default" not in action.help
    ]
    assert silent == []


def test_top_level_help_says_the_exit_statuses_and_where_v_goes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help([], capsys)
    assert "Exit status: 0 done; 1 'check' found errors or warnings; 2 bad input" in text
    assert "before COMMAND: graphopt -v optimize" in text
    text = _help(["check"], capsys)
    assert "1 when there are findings (warnings too, unless --errors-only)" in text


@pytest.mark.parametrize("flag", ["-v", "-vv", "--verbose"])
def test_verbose_after_the_command_says_where_it_goes(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["inspect", flag, str(tmp_path / "m.onnx")])
    assert exit_.value.code == 2
    one_line_error(capsys, f"unrecognized arguments: {flag}; -v/--verbose goes before the command")


def test_optimize_help_names_every_builtin_pipeline_and_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(["optimize"], capsys)
    names = ", ".join(builtin_pipelines())
    assert f"built-in pipeline name ({names}) or a pipeline YAML file (default: default)" in text


def test_quantize_help_says_the_preprocessing_defaults_the_code_has(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(["quantize"], capsys)
    spec = PreprocessSpec()
    assert (spec.scale, spec.mean, spec.std, spec.bgr) == (1.0, (0, 0, 0), (1, 1, 1), False)
    assert "(default 1: pixels 0..255" in text
    assert "after --scale (default 0)" in text and "1 or 3 numbers (default 1)" in text
    assert "pad to --size with 114" in text and spec.pad_value == 114
    assert "(default: tensorrt for --target tensorrt, default for onnxruntime)" in text
    keys = "size, letterbox, mean, std, scale, bgr, pad_value"
    assert f"a mapping of {keys}; the flags given win over it" in text
    assert sorted(keys.split(", ")) == sorted(PreprocessSpec.__dataclass_fields__)


def test_build_distill_inspect_and_merge_help_say_what_they_left_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(["build"], capsys)
    assert "timing cache: read if it exists, written back after the build" in text
    assert "images (RGB, resized to the input's size, scaled to 0..1)" in text
    text = _help(["distill-targets"], capsys)
    assert "TEACHER" not in text and "DIR" not in text
    assert "Run the teacher model over --data" in text
    text = _help(["inspect"], capsys)
    assert "a summary of the post-dominator tree (nodes only the exit post-dominates" in text
    text = _help(["merge"], capsys)
    assert "I: the model's number in the order given, from 0, or its prefix" in text


def test_an_interrupted_optimize_names_its_dump_dir_on_one_line(tmp_path: Path) -> None:
    dumps = tmp_path / "d\ne"
    dumps.mkdir()
    (dumps / "01-x.onnx").write_bytes(b"")
    said = _kept(argparse.Namespace(dump_dir=str(dumps)))
    assert "\n" not in said and repr(str(dumps)) in said
