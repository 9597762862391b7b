"""Review 12, pipelines: an included pipeline's `opt_level:`, empty `repeat:`/`if_changed:`
groups, and --dump-dir's numbering past 99. Each test failed before its fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.errors import PipelineError
from graphopt.ir import Graph
from graphopt.passes.base import Pass, PassContext, PassResult
from graphopt.pipeline import load_pipeline, make_pipeline

# y = Relu(Identity(x)) and a dead Neg: eliminate-noops (level 1) removes the Identity,
# eliminate-dead-code (level 0) the Neg
MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3] x) => (float[2,3] y) {
    dead = Neg(x)
    i = Identity(x)
    y = Relu(i)
}
"""


def _ops(pipeline: str | Path, **options: object) -> list[str]:
    out = graphopt.optimize(onnx.parser.parse_model(MODEL), pipeline, **options)
    return [n.op_type for n in out.graph.node]


def test_an_included_pipelines_opt_level_gates_its_own_passes(tmp_path):
    """`opt_level: 0` in an included file was ignored: its level-1 eliminate-noops ran at the
    including pipeline's level 2."""
    (tmp_path / "low.yaml").write_text(
        "opt_level: 0\npasses:\n  - eliminate-noops\n  - eliminate-dead-code\n"
    )
    top = tmp_path / "top.yaml"
    top.write_text("passes:\n  - include: low.yaml\n  - eliminate-noops: {only: [Dropout]}\n")
    assert _ops(top) == ["Identity", "Relu"]  # dead code gone (level 0), the Identity kept
    assert _ops(tmp_path / "low.yaml") == ["Identity", "Relu"]  # as it runs alone
    # the user's level wins over every pipeline's, as over the top one's
    assert _ops(top, opt_level=1) == ["Relu"]
    # steps of the including file are not capped by the included one's level
    top.write_text("passes:\n  - include: low.yaml\n  - eliminate-noops\n")
    assert _ops(top) == ["Relu"]


def test_an_include_never_raises_the_including_pipelines_level(tmp_path):
    (tmp_path / "high.yaml").write_text("opt_level: 2\npasses:\n  - eliminate-noops\n")
    top = tmp_path / "top.yaml"
    top.write_text("opt_level: 0\npasses:\n  - include: high.yaml\n  - eliminate-dead-code\n")
    assert _ops(top) == ["Identity", "Relu"]


def test_nested_includes_take_the_lowest_level(tmp_path):
    (tmp_path / "inner.yaml").write_text("opt_level: 2\npasses:\n  - eliminate-noops\n")
    (tmp_path / "middle.yaml").write_text("opt_level: 0\npasses:\n  - include: inner.yaml\n")
    top = tmp_path / "top.yaml"
    top.write_text("passes:\n  - include: middle.yaml\n")
    assert _ops(top) == ["Neg", "Identity", "Relu"]
    (step,) = load_pipeline(top).pass_steps()
    assert step.max_level == 0


def test_constants_are_not_adopted_for_an_included_constants_pass_its_level_skips(tmp_path):
    """optimize converts Constant nodes while indexing when the pipeline starts with
    constants-to-initializers at a level that runs it: an included pipeline's `opt_level: -1`
    skips that pass, so the Constant node stays."""
    (tmp_path / "off.yaml").write_text("opt_level: -1\npasses:\n  - constants-to-initializers\n")
    top = tmp_path / "top.yaml"
    top.write_text("passes:\n  - include: off.yaml\n")
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
g (float[2] x) => (float[2] y) {
    k = Constant <value = float[2] {1.0, 2.0}> ()
    y = Add(x, k)
}"""
    )
    out = graphopt.optimize(model, top)
    assert [n.op_type for n in out.graph.node] == ["Constant", "Add"]
    assert not out.graph.initializer
    out = graphopt.optimize(model, top, opt_level=0)  # the user's level runs it
    assert [n.op_type for n in out.graph.node] == ["Add"]


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("passes:\n  - repeat: []\n", 2, "repeat:"),
        ("passes:\n  - repeat:\n      max_iterations: 2\n      passes: []\n", 2, "repeat:"),
        ("passes:\n  - eliminate-dead-code\n  - if_changed: []\n", 3, "if_changed:"),
        ("passes:\n  - eliminate-dead-code\n  - repeat: [include: none.yaml]\n", 3, "repeat:"),
        (
            "passes:\n  - repeat:\n      - eliminate-noops\n      - if_changed: []\n",
            4,
            "if_changed:",
        ),
    ],
)
def test_a_group_without_passes_is_refused_with_its_file_and_line(tmp_path, text, line, key):
    """An empty repeat:/if_changed: group ran nothing, without a word."""
    (tmp_path / "none.yaml").write_text("passes: []\n")
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(PipelineError, match=f"`{key}` holds no pass") as info:
        load_pipeline(p)
    assert str(info.value).startswith(f"{p}:{line}:")


def test_a_top_level_empty_pipeline_still_runs_no_pass(tmp_path):
    """Kept on purpose (README): a pipeline that only loads and saves."""
    p = tmp_path / "none.yaml"
    p.write_text("passes: []\n")
    assert load_pipeline(p).steps == []
    assert _ops(p) == ["Neg", "Identity", "Relu"]


@dataclass
class _Touch(Pass):
    """Test pass: says it changed the graph (it does not)."""

    name = "test-touch"
    opt_level = 0

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        return PassResult(True)


@dataclass
class _Poke(_Touch):
    name = "test-poke"


def test_dump_dir_numbers_sort_in_run_order_past_99(tmp_path):
    """The 100th dump was 100-..., which sorts before 11-...: a 101-step run's folder listed
    its dumps out of order."""
    passes: list[str | Pass] = [_Touch() if i % 2 else _Poke() for i in range(1, 102)]
    dump = tmp_path / "dump"
    graphopt.optimize(onnx.parser.parse_model(MODEL), make_pipeline("p", passes), dump_dir=dump)
    names = sorted(p.name for p in dump.iterdir())
    assert len(names) == 101
    assert names == [
        f"{i:03d}-{'test-touch' if i % 2 else 'test-poke'}.onnx" for i in range(1, 102)
    ]
    assert onnx.load(str(dump / names[0])).graph.output[0].name == "y"


def test_dump_dir_keeps_two_digits_below_100(tmp_path):
    dump = tmp_path / "dump"
    passes: list[str | Pass] = [_Touch() for _ in range(99)]
    graphopt.optimize(onnx.parser.parse_model(MODEL), make_pipeline("p", passes), dump_dir=dump)
    names = sorted(p.name for p in dump.iterdir())
    assert names[0] == "01-test-touch.onnx" and names[-1] == "99-test-touch.onnx"
