"""H167: a pipeline YAML whose groups hold themselves (an alias of an anchor around them) or
nest without bound was a RecursionError with a traceback (CLI exit 1), not a PipelineError
naming the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto, helper, save

from graphopt.cli import main
from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline, parse_pipeline

MAX_NESTING = 32  # graphopt.pipeline.MAX_NESTING


def _nested_repeats(levels: int) -> str:
    lines = ["passes:"]
    lines += ["  " * (i + 1) + "- repeat:" for i in range(levels)]
    lines.append("  " * (levels + 1) + "- constant-folding")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("passes: &p\n  - constant-folding\n  - if_changed: *p\n", 3, "if_changed:"),
        ("passes: &p\n  - repeat: *p\n", 2, "repeat:"),
        ("passes: &p\n  - repeat: {max_iterations: 2, passes: *p}\n", 2, "repeat:"),
        # an anchor on a group, its alias inside it
        (
            "passes:\n  - repeat: &r\n      passes:\n        - constant-folding\n"
            "        - repeat: *r\n",
            5,
            "repeat:",
        ),
    ],
)
def test_a_group_holding_itself_is_refused_at_its_line(text: str, line: int, key: str) -> None:
    with pytest.raises(PipelineError) as err:
        parse_pipeline(text, "self.yaml")
    assert str(err.value).startswith(f"self.yaml:{line}: `{key}` holds the list it is in")


def test_an_alias_of_a_group_parsed_before_is_still_taken() -> None:
    pipeline = parse_pipeline(
        "passes:\n  - constant-folding\n  - repeat: &r [eliminate-dead-code]\n  - if_changed: *r\n"
    )
    assert pipeline.pass_names() == [
        "constant-folding",
        "eliminate-dead-code",
        "eliminate-dead-code",
    ]


def test_groups_nested_past_the_limit_are_refused_at_the_line() -> None:
    parse_pipeline(_nested_repeats(MAX_NESTING))  # the limit itself is fine
    with pytest.raises(PipelineError) as err:
        parse_pipeline(_nested_repeats(200), "deep.yaml")
    assert str(err.value).startswith(f"deep.yaml:{MAX_NESTING + 2}: `repeat:` nested more than")


def test_yaml_nested_too_deep_for_the_parser_is_a_pipeline_error() -> None:
    with pytest.raises(PipelineError, match=r"^deep\.yaml: invalid YAML: .*nested too deep"):
        parse_pipeline("passes: " + "[" * 3000 + "]" * 3000 + "\n", "deep.yaml")
    with pytest.raises(PipelineError, match=r"^deep\.yaml: invalid YAML: .*nested too deep"):
        parse_pipeline(_nested_repeats(400), "deep.yaml")


def test_a_long_include_chain_is_refused(tmp_path: Path) -> None:
    count = MAX_NESTING + 5
    for i in range(count):
        step = f"include: p{i + 1}.yaml" if i + 1 < count else "constant-folding"
        (tmp_path / f"p{i}.yaml").write_text(f"passes:\n  - {step}\n")
    with pytest.raises(PipelineError, match=r"`include:` nested more than"):
        load_pipeline(tmp_path / "p0.yaml")
    assert load_pipeline(tmp_path / f"p{count - MAX_NESTING}.yaml").pass_names() == [
        "constant-folding"
    ]


def test_cli_names_a_self_holding_group_in_one_line(tmp_path: Path, capsys) -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    recipe = tmp_path / "loop.yaml"
    recipe.write_text("passes: &p\n  - constant-folding\n  - if_changed: *p\n")
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(tmp_path / "m.onnx"), "-o", str(out), "-p", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"graphopt optimize: error: {recipe}:3: `if_changed:` holds the list it is in (an "
        "alias of an anchor around it): a group cannot contain itself; write its steps out"
    ]
    assert not out.exists()
