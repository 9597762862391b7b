"""Rule files and the rules a pipeline's rule passes name are validated before anything runs
(issue 4: "loaded and validated at start"): a broken rule file, or a misspelt rule, group or
exclusion, is a PipelineError naming the file and line even where no rule pass would run."""

from __future__ import annotations

import subprocess
import sys

import pytest

import graphopt
from graphopt.errors import PipelineError
from tests.fusion_models import build, ops
from tests.test_patterns_engine import QUICKGELU_RULE

MODEL = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,8] x) => (float[2,8] y) {
  s = Sigmoid(x)
  y = Mul(x, s)
}"""


def test_a_broken_rule_file_is_refused_where_no_rule_pass_runs(tmp_path):
    """rules: [broken.yaml] with passes: [constant-folding] optimized and wrote the model: the
    rule file was read only by a rule pass."""
    (tmp_path / "broken.yaml").write_text("rules:\n  - name: x\n    target: [\n")
    pipe = tmp_path / "p.yaml"
    pipe.write_text("passes:\n  - constant-folding\nrules: [broken.yaml]\n")
    with pytest.raises(PipelineError, match=r"broken\.yaml:\d+: invalid YAML"):
        graphopt.optimize(build(MODEL), str(pipe))


def test_a_rule_name_clashing_with_a_built_in_is_refused_up_front(tmp_path):
    (tmp_path / "dup.yaml").write_text(QUICKGELU_RULE.replace("my-silu", "fold-batchnorm-conv"))
    pipe = tmp_path / "p.yaml"
    pipe.write_text("passes:\n  - eliminate-dead-code\nrules: [dup.yaml]\n")
    with pytest.raises(PipelineError, match="'fold-batchnorm-conv' is already defined"):
        graphopt.optimize(build(MODEL), str(pipe))


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("fold-batchnorm: {exclude: [no-such-rule]}", "cannot exclude unknown rule 'no-such-rule'"),
        ("fuse-patterns: {rules: [no-such-rule]}", "unknown rule or group 'no-such-rule'"),
        ("fuse-patterns: {groups: [no-such-group]}", "unknown rule or group 'no-such-group'"),
    ],
)
def test_a_misspelt_rule_or_group_names_the_pipeline_file_and_line(tmp_path, step, message):
    """An unknown excluded rule was ignored (nothing said); unknown rules and groups were found
    only when the pass ran, without the pipeline file or line. An included pipeline's step is
    named by its own file."""
    inner = tmp_path / "inner.yaml"
    inner.write_text(f"passes:\n  - constant-folding\n  - {step}\n")
    outer = tmp_path / "outer.yaml"
    outer.write_text("passes:\n  - eliminate-dead-code\n  - include: inner.yaml\n")
    for pipe in (inner, outer):
        with pytest.raises(PipelineError, match=rf"inner\.yaml:3: .*{message}"):
            graphopt.optimize(build(MODEL), str(pipe))


def test_rules_from_the_api_option_count_for_the_check(tmp_path):
    """A step may name a rule that a rule file given through optimize(rule_files=...) holds."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(QUICKGELU_RULE)
    pipe = tmp_path / "p.yaml"
    pipe.write_text("passes:\n  - fuse-patterns: {rules: [my-silu]}\n")
    out = graphopt.optimize(build(MODEL), str(pipe), rule_files=[rules])
    assert ops(out) == ["com.microsoft.QuickGelu"]


def test_the_cli_exits_2_and_writes_nothing(tmp_path):
    import onnx

    (tmp_path / "broken.yaml").write_text("rules: {\n")
    pipe = tmp_path / "p.yaml"
    pipe.write_text("passes:\n  - constant-folding\nrules: [broken.yaml]\n")
    model = tmp_path / "m.onnx"
    onnx.save(build(MODEL), model)
    out = tmp_path / "o.onnx"
    argv = ["optimize", str(model), "-o", str(out), "--pipeline", str(pipe)]
    run = subprocess.run(
        [sys.executable, "-m", "graphopt", *argv],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2, run.stderr
    assert "broken.yaml" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
