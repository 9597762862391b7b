"""Pipeline YAML validation, the pass manager, instruments and the context options."""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.errors import PassError, PipelineError, VerifyError
from graphopt.ir import Graph
from graphopt.passes.base import PASS_REGISTRY, Pass, PassContext, PassResult
from graphopt.pipeline import (
    PassManager,
    builtin_pipelines,
    load_pipeline,
    make_pipeline,
    parse_pipeline,
)
from tests.conftest import needs_onnxruntime_opset_24

MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3] x) => (float[2,3] y) {
    dead = Neg(x)
    y = Relu(x)
}
"""


def _model() -> onnx.ModelProto:
    return onnx.parser.parse_model(MODEL)


def test_builtin_pipelines_parse_and_name_registered_passes():
    names = builtin_pipelines()
    assert "default" in names
    for name in names:
        pipe = load_pipeline(name)
        assert pipe.pass_names(), name
        assert set(pipe.pass_names()) <= set(PASS_REGISTRY), name


def test_user_yaml_file_runs_like_a_builtin(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\npasses:\n  - eliminate-dead-code\n")
    out = graphopt.optimize(_model(), pipeline=p)
    assert [n.op_type for n in out.graph.node] == ["Relu"]


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        (
            "passes:\n  - no-such-pass\n",
            2,
            "unknown pass 'no-such-pass'; valid passes: .*eliminate-dead-code",
        ),
        (
            "passes:\n  - eliminate-dead-code: {bogus: 1}\n",
            2,
            "has no option 'bogus'; valid options: keep_unused_initializers",
        ),
        ("passes:\n  - eliminate-dead-code: {keep_unused_initializers: 3}\n", 2, "must be bool"),
        ("passes: [eliminate-dead-code\n", 2, "invalid YAML"),
        ("name: x\n", 1, "missing `passes:`"),
        (
            "passes:\n  - repeat:\n      passes: [eliminate-dead-code]\n      max_iterations: 0\n",
            2,
            "at least 1",
        ),
        (
            "passes:\n  - repeat:\n      passes: [eliminate-dead-code]\n      forever: true\n",
            4,
            "unknown key 'forever'",
        ),
        ("passez: []\n", 1, "unknown key 'passez'"),
        ("passes:\n  - if_changed: [eliminate-dead-code]\n", 2, "follows the step"),
        ("passes:\n  - eliminate-dead-code\n  - if_changed: {x: 1}\n", 3, "must be a list"),
        # a bare pass name (not a list) named `passes:`, which the step does not have
        ("passes:\n  - eliminate-dead-code\n  - if_changed: eliminate-noops\n", 3, "`if_changed:`"),
        ("rules: [nowhere.yaml]\npasses: []\n", 1, "rule file 'nowhere.yaml' not found"),
    ],
)
def test_bad_pipelines_name_file_line_and_choices(tmp_path, text, line, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(PipelineError, match=match) as info:
        load_pipeline(p)
    assert str(info.value).startswith(f"{p}:{line}:")


def test_unknown_pipeline_name_lists_builtins():
    with pytest.raises(PipelineError, match=r"use one of .*default"):
        load_pipeline("not-a-pipeline")


def test_missing_yaml_file():
    with pytest.raises(PipelineError, match="not found"):
        load_pipeline("/nonexistent/pipe.yaml")


@dataclass
class _CountingPass(Pass):
    """Test pass: changes the graph `budget` times, then reports no change."""

    name = "test-counting"
    opt_level = 1
    budget: int = 3

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        ctx.options["calls"] = ctx.options.get("calls", 0) + 1
        if self.budget > 0:
            self.budget -= 1
            return PassResult(True, {"steps": 1})
        return PassResult(False)


def test_repeat_runs_until_fixed_point_and_respects_max_iterations():
    ctx = PassContext()
    pipe = parse_pipeline("passes: []\n")
    pipe.steps = parse_pipeline(
        "passes:\n  - repeat:\n      max_iterations: 10\n      passes: [eliminate-dead-code]\n"
    ).steps
    pipe.steps[0].steps[0].pass_ = _CountingPass(budget=3)  # type: ignore[union-attr]
    PassManager(pipe).run(Graph(_model()), ctx)
    assert ctx.options["calls"] == 4  # three changing runs, one that finds nothing

    ctx = PassContext()
    pipe.steps[0].max_iterations = 2  # type: ignore[union-attr]
    pipe.steps[0].steps[0].pass_ = _CountingPass(budget=100)  # type: ignore[union-attr]
    PassManager(pipe).run(Graph(_model()), ctx)
    assert ctx.options["calls"] == 2


def test_if_changed_runs_only_after_a_step_that_changed_the_graph():
    def run(budget: int) -> int:
        pipe = parse_pipeline(
            "passes:\n  - eliminate-dead-code\n  - if_changed:\n      - eliminate-noops\n"
        )
        pipe.steps[0].pass_ = _CountingPass(budget=budget)  # type: ignore[union-attr]
        pipe.steps[1].steps[0].pass_ = _CountingPass(budget=0)  # type: ignore[union-attr]
        ctx = PassContext()
        PassManager(pipe).run(Graph(_model()), ctx)
        return int(ctx.options["calls"])

    assert run(budget=1) == 2  # the first step changed the graph: the second ran
    assert run(budget=0) == 1  # it did not: nothing more ran


def test_if_changed_after_an_include_watches_every_included_step(tmp_path):
    """`- include: x` is one step of the file: an if_changed: after it ran only when the
    included pipeline's last step changed the graph, not when an earlier one did."""
    (tmp_path / "two.yaml").write_text("passes:\n  - eliminate-noops\n  - eliminate-dead-code\n")
    (tmp_path / "none.yaml").write_text("passes: []\n")
    top = tmp_path / "top.yaml"
    top.write_text("passes:\n  - include: two.yaml\n  - if_changed:\n      - eliminate-noops\n")

    def run(first: int, second: int) -> int:
        pipe = load_pipeline(top)
        pipe.steps[0].pass_ = _CountingPass(budget=first)  # type: ignore[union-attr]
        pipe.steps[1].pass_ = _CountingPass(budget=second)  # type: ignore[union-attr]
        pipe.steps[2].steps[0].pass_ = _CountingPass(budget=0)  # type: ignore[union-attr]
        ctx = PassContext()
        PassManager(pipe).run(Graph(_model()), ctx)
        return int(ctx.options["calls"])

    assert run(first=1, second=0) == 3  # the include's first step changed the graph
    assert run(first=0, second=1) == 3
    assert run(first=0, second=0) == 2
    top.write_text("passes:\n  - eliminate-dead-code\n  - include: none.yaml\n  - if_changed: []\n")
    with pytest.raises(PipelineError, match="follows the step"):
        load_pipeline(top)  # an include of nothing is no step to wait for


def test_default_pipeline_fuses_what_the_clean_up_exposed_in_one_run():
    """A no-op Transpose pair between a Conv and its per-channel Mul/Add: merge-transposes (in
    the clean-up loop) removes it, then the `if_changed:` step folds the Mul/Add into the Conv
    (a second optimize did that before)."""
    import numpy as np
    from onnx import helper, numpy_helper

    from tests.conftest import assert_same_outputs

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Transpose", ["c"], ["t1"], perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["t1"], ["t2"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["t2", "s"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal((1, 4, 1, 1)).astype(np.float32), "s"),
        numpy_helper.from_array(rng.standard_normal((1, 4, 1, 1)).astype(np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 6, 6])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for pipeline in ("default", "tensorrt", "ort-fusions"):
        once = graphopt.optimize(model, pipeline)
        assert [n.op_type for n in once.graph.node] == ["Conv"], pipeline
        assert graphopt.optimize(once, pipeline).SerializeToString() == once.SerializeToString()
    assert_same_outputs(model, once, {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)})


def test_disabled_passes_and_opt_level_are_skipped():
    out = graphopt.optimize(
        _model(),
        pipeline=make_pipeline("p", ["eliminate-dead-code"]),
        disable=["eliminate-dead-code"],
    )
    assert len(out.graph.node) == 2
    ctx = PassContext(opt_level=0)
    pipe = make_pipeline("p", [_CountingPass()])
    PassManager(pipe).run(Graph(_model()), ctx)
    assert "calls" not in ctx.options  # opt_level 1 pass skipped at level 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"upgrade_opsets": True}, "unknown option 'upgrade_opsets'"),  # a typo of upgrade_opset
        ({"disable": ["eliminate-dead-cod"]}, "cannot disable unknown pass 'eliminate-dead-cod'"),
        ({"opt_level": "2"}, "opt_level must be an integer, got '2'"),
    ],
)
def test_a_misspelt_option_or_disabled_pass_is_an_error_not_ignored(options, message):
    with pytest.raises(PipelineError, match=message):
        graphopt.optimize(_model(), **options)


def test_cli_disable_of_an_unknown_pass_is_one_line(tmp_path, capsys):
    from graphopt.cli import main

    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save_model(_model(), str(src))
    assert main(["optimize", str(src), "-o", str(out), "--disable", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown pass 'nope'" in err and not out.exists()


def test_report_records_timing_node_counts_and_stats():
    _, report = graphopt.optimize_with_report(
        _model(), pipeline=make_pipeline("p", ["eliminate-dead-code"])
    )
    (rec,) = report.records
    assert rec.name == "eliminate-dead-code" and rec.nodes_before == 2 and rec.nodes_after == 1
    assert rec.stats["nodes"] == 1 and rec.seconds >= 0
    assert report.totals()["eliminate-dead-code"]["nodes_removed"] == 1


@dataclass
class _BrokenPass(Pass):
    """Test pass that crashes, or breaks the model."""

    name = "test-broken"
    mode: str = "crash"

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if self.mode == "crash":
            raise KeyError("boom")
        if self.mode == "crash-at-node":
            for node in graph:
                if node.op_type == "Relu":
                    raise ValueError("cannot handle this node")
        relu = next(n for n in graph if n.op_type == "Relu")
        relu.op_type = "NotAnOnnxOp"
        return PassResult(True)


def test_a_crashing_pass_is_named_in_the_error():
    with pytest.raises(PassError, match="pass test-broken: KeyError"):
        graphopt.optimize(_model(), pipeline=make_pipeline("p", [_BrokenPass()]))


def test_a_pass_crashing_on_a_node_names_pass_node_and_op():
    model = _model()
    relu = next(n.name for n in Graph(model).nodes.values() if n.op_type == "Relu")
    with pytest.raises(PassError) as info:
        graphopt.optimize(model, pipeline=make_pipeline("p", [_BrokenPass(mode="crash-at-node")]))
    assert (
        str(info.value)
        == f"pass test-broken, node {relu!r}, op Relu: ValueError: cannot handle this node"
    )


def test_verify_each_catches_the_pass_that_broke_the_model():
    with pytest.raises(VerifyError, match="after pass test-broken"):
        graphopt.optimize(
            _model(), pipeline=make_pipeline("p", [_BrokenPass(mode="break")]), verify_each=True
        )


def test_dump_dir_gets_one_model_per_changing_pass(tmp_path):
    graphopt.optimize(
        _model(), pipeline=make_pipeline("p", ["eliminate-dead-code"]), dump_dir=tmp_path / "dump"
    )
    dumped = sorted(p.name for p in (tmp_path / "dump").iterdir())
    assert dumped == ["01-eliminate-dead-code.onnx"]
    assert len(onnx.load(str(tmp_path / "dump" / dumped[0])).graph.node) == 1


def test_include_inlines_a_builtin_and_a_relative_file(tmp_path):
    (tmp_path / "part.yaml").write_text(
        "passes:\n  - eliminate-dead-code: {keep_unused_initializers: true}\n"
    )
    p = tmp_path / "main.yaml"
    p.write_text("passes:\n  - include: simplify\n  - include: part.yaml\n")
    pipe = load_pipeline(p)
    simplify = load_pipeline("simplify")
    assert pipe.pass_names() == [*simplify.pass_names(), "eliminate-dead-code"]
    assert pipe.steps[-1].pass_.keep_unused_initializers is True  # type: ignore[union-attr]
    default = load_pipeline("default")
    assert default.pass_names()[-len(simplify.pass_names()) :] == simplify.pass_names()


def test_include_errors_name_the_line(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("passes:\n  - include: b.yaml\n")
    b.write_text("passes:\n  - eliminate-dead-code\n  - include: a.yaml\n")
    with pytest.raises(PipelineError, match=r"b.yaml:3: include cycle"):
        load_pipeline(a)
    c = tmp_path / "c.yaml"
    c.write_text("passes:\n  - include: nowhere\n")
    with pytest.raises(PipelineError, match=r"c.yaml:2: cannot include 'nowhere'"):
        load_pipeline(c)
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00passes")
    d = tmp_path / "d.yaml"
    d.write_text("passes:\n  - include: binary.yaml\n")
    with pytest.raises(PipelineError, match=r"d.yaml:2: cannot read .*binary.yaml"):
        load_pipeline(d)


def test_pipeline_opt_level_applies_unless_the_user_gives_one(tmp_path):
    p = tmp_path / "lvl.yaml"
    p.write_text("opt_level: 0\npasses:\n  - eliminate-dead-code\n  - eliminate-noops\n")
    _, report = graphopt.optimize_with_report(_model(), pipeline=p)
    assert [r.name for r in report.records] == ["eliminate-dead-code"]  # noops is level 1
    _, report = graphopt.optimize_with_report(_model(), pipeline=p, opt_level=2)
    assert [r.name for r in report.records] == ["eliminate-dead-code", "eliminate-noops"]


@needs_onnxruntime_opset_24  # the SiLUs become Swish (opset 24) only where it runs there
def test_default_pipeline_fuses_until_nothing_more_is_exposed():
    """One second fusion round was not enough: there p1 = Conv(x, W)·s + b folds into a Conv
    equal to p2 = Conv(x, W·s, b); the clean-up merges them, so Mul(p1, Sigmoid(p2)) becomes a
    SiLU the second round fuses; the clean-up then merges that Swish with the model's Swish(p2),
    which makes Mul(a1, Sigmoid(a2)) a SiLU only a second optimize fused (not idempotent)."""
    import numpy as np
    from onnx import helper, numpy_helper

    from tests.conftest import assert_same_outputs

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 1, 1)).astype(np.float32)
    s = rng.standard_normal((1, 4, 1, 1)).astype(np.float32)
    b = rng.standard_normal((1, 4, 1, 1)).astype(np.float32)
    folded = graphopt.optimize(_conv_scale_shift(w, s, b, ["y"], [], []), "default")
    conv = folded.graph.node[0]
    values = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    nodes = [
        helper.make_node("Conv", ["x", "W2", "B2"], ["p2"]),
        helper.make_node("Sigmoid", ["p2"], ["sg"]),
        helper.make_node("Mul", ["y", "sg"], ["a1"]),  # a SiLU once y and p2 are merged
        helper.make_node("Swish", ["p2"], ["a2"]),
        helper.make_node("Sigmoid", ["a2"], ["sg2"]),
        helper.make_node("Mul", ["a1", "sg2"], ["z"]),  # a SiLU once a1 and a2 are merged
    ]
    extra = [
        numpy_helper.from_array(values[conv.input[1]], "W2"),
        numpy_helper.from_array(values[conv.input[2]], "B2"),
    ]
    model = _conv_scale_shift(w, s, b, ["z"], nodes, extra)
    for pipeline in ("default", "ort-fusions"):
        once = graphopt.optimize(model, pipeline)
        assert [n.op_type for n in once.graph.node] == ["Conv", "Swish", "Swish"], pipeline
        assert graphopt.optimize(once, pipeline).SerializeToString() == once.SerializeToString()
    assert_same_outputs(model, once, {"x": rng.standard_normal((3, 2, 4, 4)).astype(np.float32)})


def _conv_scale_shift(w, s, b, outputs, nodes, inits):  # type: ignore[no-untyped-def]
    """y = Conv(x, W)·s + b (opset 24), then `nodes`; graph outputs `outputs`."""
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W"], ["c"]),
            helper.make_node("Mul", ["c", "s"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["y"]),
            *nodes,
        ],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, ["N", 4, 4, 4]) for o in outputs],
        [
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(s, "s"),
            numpy_helper.from_array(b, "b"),
            *inits,
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)])
