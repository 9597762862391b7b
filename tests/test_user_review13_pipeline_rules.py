"""A pipeline YAML with `rules:` but no step that runs them (no `fuse-patterns`) loaded the
rule files and never applied a rule, without a word (session-13 fresh-user review): it is a
PipelineError naming the file and the `rules:` line now. A rule pass that selects them (a
`fuse-patterns` step, here or in an included pipeline, or a rule pass naming them) is fine."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from graphopt.cli import main
from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline

RULES = """
rules:
  - name: my-silu
    doc: x·σ(x) ⇒ QuickGelu(x)
    target: y = Mul(x, Sigmoid(x))
    replacement: y = com.microsoft.QuickGelu(x, alpha=1.0)
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "my_rules.yaml").write_text(RULES)
    return tmp_path


def test_rules_without_a_step_running_them_are_refused(folder: Path) -> None:
    pipe = folder / "p.yaml"
    pipe.write_text("name: mine\nrules: [my_rules.yaml]\npasses:\n  - eliminate-dead-code\n")
    with pytest.raises(PipelineError, match=r"p\.yaml:2: `rules:` loads 1 rule\(s\) \('my-silu'\)"):
        load_pipeline(str(pipe))


def test_the_cli_says_it_in_one_line(folder: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pipe = folder / "p.yaml"
    pipe.write_text("rules: [my_rules.yaml]\npasses: [fuse-activations]\n")
    model = folder / "m.onnx"
    onnx.save(
        onnx.parser.parse_model(
            '<ir_version: 8, opset_import: ["" : 13]>\n'
            "g (float[2,8] x) => (float[2,8] y) { s = Sigmoid(x)\n y = Mul(x, s) }"
        ),
        model,
    )
    assert main(["optimize", str(model), "-p", str(pipe), "-o", str(folder / "o.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no step runs" in err and "fuse-patterns" in err, err
    assert not (folder / "o.onnx").exists()


@pytest.mark.parametrize(
    "passes",
    [
        "  - fuse-patterns\n",
        "  - repeat:\n      passes: [fuse-patterns, eliminate-dead-code]\n",
        "  - fuse-activations: {rules: [my-silu]}\n",
        "  - include: inner.yaml\n",
    ],
)
def test_a_step_that_runs_them_is_fine(folder: Path, passes: str) -> None:
    (folder / "inner.yaml").write_text("passes: [fuse-patterns]\n")
    pipe = folder / "p.yaml"
    pipe.write_text("rules: [my_rules.yaml]\npasses:\n" + passes)
    assert load_pipeline(str(pipe)).rule_files


def test_an_included_file_of_rules_is_judged_with_its_includer(folder: Path) -> None:
    """A file that holds the rules but not the step is fine as an include of one that runs
    them, and refused as a pipeline of its own."""
    inner = folder / "inner.yaml"
    inner.write_text("rules: [my_rules.yaml]\npasses: [eliminate-dead-code]\n")
    outer = folder / "outer.yaml"
    outer.write_text("passes:\n  - include: inner.yaml\n  - fuse-patterns\n")
    assert load_pipeline(str(outer)).rule_files
    with pytest.raises(PipelineError, match="no step runs"):
        load_pipeline(str(inner))
