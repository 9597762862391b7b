"""H154: small API/CLI findings. Every test here failed before its fix.

- `split(..., strip_prefix="")` without a task, or a prefix no kept output starts with, renamed
  nothing and returned as if it had (the CLI refused them for --outputs only); with a task ""
  keeps the merged model's names, which is documented rather than refused.
- A positional argument past the last one `quantize` / `split` / `optimize` take was Python's
  TypeError ("takes from 1 to 5 positional arguments but 6 were given").
- model_io's log lines, and `quantize` / `build --calib`'s errors, printed a path with a
  newline raw: the line broke in two.
- `--shapes x:1 a b` with no model elsewhere took b as the model and called a "bad --shapes"
  (`--shapes x:1 m.onnx b` called the model itself a bad shape).
- `optimize(opt_level=-1)` runs no pass: documented (the CLI refuses -1).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper
import pytest
from onnx import TensorProto

import graphopt
from graphopt.cli import build_parser, main
from graphopt.errors import GraphoptError, OptionError, PipelineError
from graphopt.multitask import merge, split
from tests.test_cli_review3 import one_line_error
from tests.test_cli_review4 import relu_model


def _one_line(error: BaseException, *needles: str) -> str:
    text = str(error)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


@pytest.fixture
def merged(tmp_path: Path) -> onnx.ModelProto:
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(relu_model([1, 4]), str(a))
    sig = relu_model([1, 4])
    sig.graph.node[0].op_type = "Sigmoid"
    onnx.save(sig, str(b))
    return merge([str(a), str(b)], prefixes=["a_", "b_"])


# 1. split's strip_prefix


def test_split_refuses_a_strip_prefix_that_renames_nothing(merged: onnx.ModelProto) -> None:
    with pytest.raises(OptionError) as caught:
        split(merged, ["a_y"], strip_prefix="")
    _one_line(caught.value, "strip_prefix='' renames no output; leave it out")
    for kwargs in ({"outputs": ["a_y"]}, {"task": "a_"}):
        with pytest.raises(OptionError) as caught:
            split(merged, strip_prefix="b_", **kwargs)  # type: ignore[arg-type]
        _one_line(caught.value, "strip_prefix='b_': no kept output starts with it (a_y)")
    # what still works: a prefix some output starts with
    assert [o.name for o in split(merged, ["a_y"], strip_prefix="a_").graph.output] == ["y"]


def test_split_task_with_an_empty_strip_prefix_keeps_the_merged_names(
    merged: onnx.ModelProto,
) -> None:
    own = split(merged, task="a_")
    kept = split(merged, task="a_", strip_prefix="")
    assert [o.name for o in own.graph.output] == ["y"]
    assert [o.name for o in kept.graph.output] == ["a_y"]
    assert "keeps the outputs' merged names" in " ".join((split.__doc__ or "").split())


def test_split_cli_names_the_flag_for_a_task_prefix_no_output_has(
    merged: onnx.ModelProto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "s.onnx"
    onnx.save(merged, str(path))
    argv = ["split", str(path), "--task", "a_", "-o", str(out)]
    assert main([*argv, "--strip-prefix", "b_"]) == 2
    one_line_error(capsys, "error: --strip-prefix 'b_': no kept output starts with it (a_y)")
    assert not out.exists()
    assert main([*argv, "--strip-prefix", ""]) == 0
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["a_y"]


# 2. positional arguments past the last one taken


def test_an_extra_positional_argument_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "never-read.onnx")  # refused before anything is loaded
    from graphopt.quant.api import quantize_with_report

    for call, name, takes, kind in [
        (
            lambda: graphopt.quantize(missing, [], "minmax", None, "tensorrt", 2),
            "quantize",
            "(model, calibration_data, method, cache, target); the 6th is int 2",
            OptionError,
        ),
        (
            lambda: quantize_with_report(missing, [], "minmax", None, "tensorrt", 2),
            "quantize_with_report",
            "at most 5",
            OptionError,
        ),
        (
            lambda: graphopt.split(missing, ["a"], "b_"),
            "split",
            "(model, outputs); the 3rd is str 'b_': give the others by name",
            OptionError,
        ),
        (
            lambda: graphopt.optimize(missing, "default", 1),
            "optimize",
            "(model, pipeline); the 3rd is int 1: give the options by name, e.g. opt_level=1",
            PipelineError,
        ),
        (
            lambda: graphopt.optimize_with_report(missing, None, {"opt_level": 1}),
            "optimize_with_report",
            "the 3rd is dict",
            PipelineError,
        ),
    ]:
        with pytest.raises(kind) as caught:
            call()
        assert isinstance(caught.value, GraphoptError)
        _one_line(caught.value, f"{name}: ", takes)


def test_split_tells_names_given_one_by_one_to_come_as_a_list() -> None:
    with pytest.raises(OptionError) as caught:
        graphopt.split("m.onnx", "a", "b")
    _one_line(caught.value, "pass the outputs as one list: split(model, ['a', 'b'])")


# 3. paths and names on one line in log lines and errors


def test_model_io_log_lines_show_a_path_and_a_name_on_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from graphopt.ir.model_io import remove_left_behind

    odd = "w\nx"
    init = oh.make_tensor(odd, TensorProto.FLOAT, [1], [1.0])
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", odd], ["y"])],
        "g",
        [
            oh.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
            oh.make_tensor_value_info(odd, TensorProto.FLOAT, [1]),
        ],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [init],
    )
    old = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 9)])
    old.ir_version = 3
    with caplog.at_level(logging.INFO, logger="graphopt.ir"):
        graphopt.optimize(old)
        assert not remove_left_behind(tmp_path / "gone\nfile", "a save that did not finish")
    messages = [r.getMessage() for r in caplog.records if r.name == "graphopt.ir"]
    assert any("'w\\nx'" in m and "constants now" in m for m in messages), messages
    assert any("'" + str(tmp_path) + "/gone\\nfile'" in m for m in messages), messages
    assert all("\n" not in m for m in messages), messages


@pytest.mark.parametrize("command", ["quantize", "build"])
def test_calib_folder_errors_show_the_folder_on_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(relu_model([1, 4]), str(model))
    out = tmp_path / ("o.onnx" if command == "quantize" else "o.plan")
    extra = ["--int8"] if command == "build" else []
    assert main([command, str(model), "-o", str(out), *extra, "--calib", "a\nb"]) == 2
    one_line_error(capsys, "--calib 'a\\nb': no such folder")


def test_quantize_names_a_cache_in_path_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(relu_model([1, 4]), str(model))
    argv = ["quantize", str(model), "-o", str(tmp_path / "o.onnx"), "--cache-in", "c\nd"]
    assert main([*argv, "--size", "32"]) == 2
    one_line_error(capsys, "takes its scales from --cache-in 'c\\nd'")


def test_report_lines_show_paths_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """optimize, split and check printed the input and -o paths raw: a newline in one split
    the report line in two."""
    model, out = tmp_path / "m\nx.onnx", tmp_path / "o\ny.onnx"
    onnx.save(relu_model([1, 4]), str(model))
    for argv in (
        ["optimize", str(model), "-o", str(out)],
        ["split", str(model), "--outputs", "y", "-o", str(out)],
        ["check", str(model)],
    ):
        assert main(argv) == 0
        said = capsys.readouterr().out
        assert said.count("\n") == 1 and said.startswith(repr(str(model)) + ": "), said
        if "-o" in argv:
            assert said.endswith(f"wrote {str(out)!r}\n"), said


# 4. --shapes with several values that are no NAME:DIMS


@pytest.mark.parametrize(
    ("command", "rest"),
    [("optimize", ["-o", "o.onnx"]), ("bench", []), ("build", ["-o", "e.plan"]), ("check", [])],
)
def test_several_loose_shapes_values_without_a_model_are_refused(
    command: str, rest: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([command, "--shapes", "x:1x3", "m.onnx", "b", *rest])
    assert exit_.value.code == 2
    err = one_line_error(capsys, "--shapes 'm.onnx', 'b': 2 values are no NAME:DIMS")
    assert "give the model before --shapes" in err
    # one such value is the model, wherever it stands among the values
    for argv in (["x:1x3", "m.onnx"], ["m.onnx", "x:1x3"]):
        args = parser.parse_args([command, "--shapes", *argv, *rest])
        assert (args.input, args.shapes) == ("m.onnx", ["x:1x3"])
    # a model given otherwise: the others are left to "bad --shapes"
    args = parser.parse_args([command, "m.onnx", "--shapes", "x:1x3", "a", "b", *rest])
    assert (args.input, args.shapes) == ("m.onnx", ["x:1x3", "a", "b"])


def test_shapes_help_says_the_model_may_follow_the_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # no help line wrapped (at a hyphen, too)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the model may follow the values: --shapes NAME:DIMS MODEL" in text


# 5. opt_level -1


def test_optimize_documents_that_opt_level_minus_one_runs_no_pass() -> None:
    doc = " ".join((graphopt.optimize.__doc__ or "").split())
    assert "-1 runs no pass at all" in doc
    assert "`--opt-level` takes 0 to 2 only" in doc
    # and it does: a constant Add is not folded at -1, folded at the default level
    graph = oh.make_graph(
        [
            oh.make_node("Add", ["c", "c"], ["d"]),
            oh.make_node("Add", ["x", "d"], ["y"]),
        ],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [onnx.numpy_helper.from_array(np.ones(2, np.float32), "c")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    assert len(graphopt.optimize(model, opt_level=-1).graph.node) == 2
    assert len(graphopt.optimize(model).graph.node) == 1


def test_readme_api_section_says_what_opt_level_minus_one_does() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    api = " ".join(readme.split("## Python API", 1)[1].split("\n## ", 1)[0].split())
    assert "`opt_level=-1` runs no pass at all" in api
    assert "The CLI's `--opt-level` takes 0 to 2 only" in api
    assert "a positional argument past the last" in api
