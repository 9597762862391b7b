"""H142: `graphopt build --shapes x:1x3x640x640 model.onnx` failed with "the following arguments
are required: input": --shapes (nargs +) took the model as one more NAME:DIMS. `check` had its
own fix (c4d1412); the flag's one definition (`commands/_common.add_shapes_argument`) now gives
every command that has it (build, bench, optimize, check) a model that comes after the values.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from graphopt.cli import build_parser, main
from graphopt.realmodels import fetch_model

SHAPE = "x:1x3x64x64"  # ppocr_det's dynamic input, small


def _one_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.removeprefix(f"graphopt {command}: error: ").rstrip("\n")


@pytest.fixture(scope="module")
def model() -> str:
    return str(fetch_model("ppocr_det"))


@pytest.mark.parametrize(
    ("command", "rest"),
    [
        ("build", ["-o", "e.plan"]),
        ("bench", []),
        ("optimize", ["-o", "o.onnx"]),
        ("check", []),
    ],
)
def test_each_command_takes_the_model_after_shapes(command: str, rest: list[str]) -> None:
    parser = build_parser()
    args = parser.parse_args([command, "--shapes", SHAPE, "y:1x3", "m.onnx", *rest])
    assert (args.input, args.shapes) == ("m.onnx", [SHAPE, "y:1x3"])
    # between two --shapes: the one value that is no NAME:DIMS
    args = parser.parse_args([command, "--shapes", SHAPE, "m.onnx", "--shapes", "y:1x3", *rest])
    assert (args.input, args.shapes) == ("m.onnx", [SHAPE, "y:1x3"])
    # the model before --shapes, or after another option closing its values: as before
    args = parser.parse_args([command, "m.onnx", "--shapes", SHAPE, *rest])
    assert (args.input, args.shapes) == ("m.onnx", [SHAPE])
    # a value with no ':' after a model given: no second model, left to --shapes' own error
    args = parser.parse_args([command, "m.onnx", "--shapes", SHAPE, "stray", *rest])
    assert (args.input, args.shapes) == ("m.onnx", [SHAPE, "stray"])


@pytest.mark.parametrize(
    ("command", "rest"), [("build", ["-o", "e.plan"]), ("bench", []), ("optimize", ["-o", "x"])]
)
def test_a_missing_model_is_still_argparse_s_one_line(
    command: str, rest: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--shapes", SHAPE, *rest])
    assert exit_.value.code == 2
    said = f"the following arguments are required: input (see 'graphopt {command} --help')"
    assert _one_line(capsys, command) == said


@pytest.mark.parametrize("command", ["build", "bench", "optimize", "check"])
def test_help_shows_the_model_as_required(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert usage.split()[-1] == "input" and "[input]" not in usage


@pytest.mark.realmodel
def test_optimize_runs_with_the_model_after_shapes(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.onnx"
    assert main(["optimize", "--verify", "--shapes", SHAPE, model, "-o", str(out)]) == 0
    assert out.is_file()
    assert "verify: " in capsys.readouterr().out
    argv = ["optimize", "--verify", model, "--shapes", SHAPE, "stray", "-o", str(out)]
    assert main(argv) == 2
    assert "'stray'" in _one_line(capsys, "optimize")


@pytest.mark.realmodel
def test_bench_runs_with_the_model_after_shapes(
    model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--runs", "2", "--warmup", "1", "--no-progress", "--shapes", SHAPE, model]
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip().endswith("inputs x 1x3x64x64")


@pytest.mark.realmodel
def test_build_reaches_its_run_with_the_model_after_shapes(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT installed: building an engine is for the TensorRT tests")
    plan = tmp_path / "m.plan"
    assert main(["build", "--shapes", SHAPE, model, "-o", str(plan)]) == 2
    assert _one_line(capsys, "build").startswith("TensorRT is not installed")
    assert not plan.exists()


@pytest.mark.realmodel
def test_check_still_says_a_missing_model_as_its_own_error(
    model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--shapes", SHAPE, model]) == 0
    assert capsys.readouterr().out == f"{model}: TensorRT 10.15: 0 errors, 0 warnings\n"
    assert main(["check", "--shapes", SHAPE]) == 2
    said = "the following arguments are required: input (see 'graphopt check --help')"
    assert _one_line(capsys, "check") == said
