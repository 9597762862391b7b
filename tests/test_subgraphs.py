"""Pipelines inside If/Loop/Scan bodies (`graphopt.subgraphs`): each body optimized as a model
of its own, its interface kept, its new names never shadowing another scope's."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.api import optimize_with_report
from graphopt.errors import VerifyError
from graphopt.ir import Graph, node_count
from graphopt.passes.base import Pass, PassContext, PassResult
from graphopt.pipeline import load_pipeline, make_pipeline

C = 4
SHAPE = [1, C, 8, 8]


def _conv_bn(prefix: str, x: str, y: str, seed: int) -> tuple[list, list]:
    """Conv → BatchNormalization → Identity(y): 3 nodes a pipeline makes one Conv."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((C, C, 3, 3)).astype(np.float32), f"{prefix}W")
    ]
    for name, value in (
        ("g", rng.random(C) + 0.5),
        ("b", rng.standard_normal(C)),
        ("m", rng.standard_normal(C)),
        ("v", rng.random(C) + 0.5),
    ):
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{prefix}{name}"))
    p = prefix
    nodes = [
        helper.make_node("Conv", [x, f"{p}W"], [f"{p}c"], name=f"{p}conv", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization",
            [f"{p}c", f"{p}g", f"{p}b", f"{p}m", f"{p}v"],
            [f"{p}bn"],
            name=f"{p}bn",
        ),
        helper.make_node("Identity", [f"{p}bn"], [y], name=f"{p}id"),
    ]
    return nodes, inits


def _tensor(name: str, shape=SHAPE, dtype=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _branch(prefix: str, x: str, seed: int) -> onnx.GraphProto:
    nodes, inits = _conv_bn(prefix, x, f"{prefix}y", seed)
    return helper.make_graph(nodes, prefix, [], [_tensor(f"{prefix}y")], inits)


def if_model(extra_top: list | None = None) -> onnx.ModelProto:
    """y = If(cond, Conv-BN(x) with one set of weights, Conv-BN(x) with another)."""
    nodes = [*(extra_top or [])]
    nodes.append(
        helper.make_node(
            "If",
            ["cond"],
            ["y"],
            name="if",
            then_branch=_branch("t_", "x", 1),
            else_branch=_branch("e_", "x", 2),
        )
    )
    graph = helper.make_graph(
        nodes, "g", [_tensor("x"), _tensor("cond", [], TensorProto.BOOL)], [_tensor("y")]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def loop_model() -> onnx.ModelProto:
    """A Loop of `n` steps carrying h: h ← Relu(Conv-BN(h)) + x, x read from the outer scope,
    with an If inside the body choosing between two Conv-BNs on the iteration parity."""
    inner_if = helper.make_node(
        "If", ["odd"], ["mixed"], name="parity",
        then_branch=_branch("lt_", "h_in", 3), else_branch=_branch("le_", "h_in", 4),
    )  # fmt: skip
    body_nodes = [
        helper.make_node("Cast", ["i"], ["i_f"], to=TensorProto.FLOAT, name="dead"),  # unread
        helper.make_node("Mod", ["i", "two"], ["parity_i"], name="mod"),
        helper.make_node("Cast", ["parity_i"], ["odd"], to=TensorProto.BOOL, name="odd"),
        inner_if,
        helper.make_node("Relu", ["mixed"], ["r"], name="relu"),
        helper.make_node("Dropout", ["r"], ["r_d"], name="dropout"),  # a no-op in inference
        helper.make_node("Add", ["r_d", "x"], ["h_out"], name="add"),
        helper.make_node("Identity", ["cond_in"], ["cond_out"], name="cond"),
    ]
    body = helper.make_graph(
        body_nodes, "body",
        [_tensor("i", [], TensorProto.INT64), _tensor("cond_in", [], TensorProto.BOOL), _tensor("h_in")],
        [_tensor("cond_out", [], TensorProto.BOOL), _tensor("h_out")],
        [numpy_helper.from_array(np.array(2, np.int64), "two")],
    )  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["h"], body=body, name="loop")],
        "g",
        [_tensor("x"), _tensor("n", [], TensorProto.INT64)],
        [_tensor("h")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def scan_model() -> onnx.ModelProto:
    """A running sum over the rows of x, each row through Identity and Mul by a constant 1."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["row"], ["row_i"], name="row_id"),
            helper.make_node("Mul", ["row_i", "one"], ["row_1"], name="times_one"),
            helper.make_node("Add", ["acc_in", "row_1"], ["acc_out"], name="acc"),
            helper.make_node("Identity", ["acc_out"], ["seen"], name="seen_id"),
        ],
        "scan_body",
        [_tensor("acc_in", [3]), _tensor("row", [3])],
        [_tensor("acc_out", [3]), _tensor("seen", [3])],
        [numpy_helper.from_array(np.ones(1, np.float32), "one")],
    )
    graph = helper.make_graph(
        [helper.make_node("Scan", ["init", "x"], ["total", "partial"], body=body,
                          num_scan_inputs=1, name="scan")],
        "g", [_tensor("init", [3]), _tensor("x", [5, 3])],
        [_tensor("total", [3]), _tensor("partial", [5, 3])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString()).run(None, feeds)


def _body(model: onnx.ModelProto, node: int = 0, attr: str = "then_branch") -> onnx.GraphProto:
    found = model.graph.node[node]
    return next(a.g for a in found.attribute if a.name == attr or a.name == "body")


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


@pytest.mark.parametrize("pipeline", ["default", "tensorrt", "ort-fusions", "simplify"])
def test_if_branches_are_optimized_and_give_the_same_outputs(pipeline):
    model = if_model()
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    then, other = _body(out), _body(out, 0, "else_branch")
    if pipeline == "simplify":  # no BN folding: only the Identity goes
        assert len(then.node) == len(other.node) == 2
    else:
        assert [n.op_type for n in then.node] == [n.op_type for n in other.node] == ["Conv"]
    assert [o.name for o in then.output] == ["t_y"] and [o.name for o in other.output] == ["e_y"]
    for cond in (True, False):
        feeds = {"x": _x(), "cond": np.array(cond)}
        np.testing.assert_allclose(_run(out, feeds)[0], _run(model, feeds)[0], rtol=1e-4, atol=1e-5)
    assert graphopt.optimize(model) is not model and len(_body(model).node) == 3  # not mutated


def test_loop_body_and_the_if_nested_in_it():
    model = loop_model()
    before = node_count(model.graph)
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
    body = _body(out)
    assert [i.name for i in body.input] == ["i", "cond_in", "h_in"]
    assert [o.name for o in body.output] == ["cond_out", "h_out"]
    names = [n.name for n in body.node]
    assert "dropout" not in names and "dead" not in names and "odd" in names
    nested = next(n for n in body.node if n.op_type == "If")
    for branch in nested.attribute:
        assert [n.op_type for n in branch.g.node] == ["Conv"]
    assert node_count(out.graph) == before - 2 - 2 * 2  # Dropout, Cast; BN, Identity per branch
    for steps in (1, 2, 3):
        feeds = {"x": _x(steps), "n": np.array(steps, np.int64)}
        np.testing.assert_allclose(_run(out, feeds)[0], _run(model, feeds)[0], rtol=1e-4, atol=1e-5)


def test_scan_body():
    model = scan_model()
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
    assert [n.op_type for n in _body(out).node] == ["Add", "Identity"]
    feeds = {
        "init": np.zeros(3, np.float32),
        "x": np.arange(15, dtype=np.float32).reshape(5, 3),
    }
    for a, b in zip(_run(out, feeds), _run(model, feeds), strict=True):
        np.testing.assert_array_equal(a, b)


def test_option_subgraphs_false_keeps_every_body_as_it_was():
    model = loop_model()
    out = graphopt.optimize(model, subgraphs=False)
    assert _body(out).SerializeToString() == _body(model).SerializeToString()


def test_report_and_explain_cover_the_bodies():
    _, report = optimize_with_report(if_model(), explain=True)
    totals = report.totals()
    assert totals["fold-batchnorm"]["runs"] == 3  # the model and its two branches
    assert totals["fold-batchnorm"]["nodes_removed"] == 2
    applied = {node for rule, node, outcome, _ in report.explain if outcome == "applied"}
    assert {"t_bn", "e_bn"} <= applied


def test_a_pass_that_would_change_a_body_interface_leaves_the_body_as_it_was(caplog):
    @dataclass
    class ExposeBn(Pass):
        """Adds the tensor named *bn as a graph output (what expose-tensors does; it may not
        run in bodies, so this one pretends it may)."""

        name: ClassVar[str] = "test-expose-bn"

        def run(self, graph: Graph, ctx: PassContext) -> PassResult:
            found = [t for t in graph.producer if t.endswith("bn")]
            for t in found:
                graph.proto.output.append(_tensor(t))
                graph.graph_outputs.append(t)
            return PassResult(bool(found))

    model = if_model()
    pipeline = make_pipeline("t", [ExposeBn(), "fold-batchnorm"])
    with caplog.at_level(logging.WARNING, logger="graphopt.subgraphs"):
        out, report = optimize_with_report(model, pipeline, explain=True)
    assert _body(out).SerializeToString() == _body(model).SerializeToString()
    assert "kept as it was: optimizing it changed its outputs" in caplog.text
    onnx.checker.check_model(out, full_check=True)
    # --explain tells what was undone, and no rewrite of the discarded body reads as applied
    assert ("optimize-bodies", "If 'if' then_branch", "refused") in {r[:3] for r in report.explain}
    assert not [r for r in report.explain if r[0] != "optimize-bodies" and r[2] == "applied"]
    # nor does --stats count them: only the main graph's run is on record
    assert report.totals()["fold-batchnorm"]["runs"] == 1


def test_passes_that_may_not_run_in_bodies_do_not():
    model = if_model()
    pipeline = load_pipeline("default")
    out = graphopt.optimize(
        model, make_pipeline("t", ["expose-tensors", *[s.pass_.name for s in pipeline.steps[:5]]])
    )
    assert [o.name for o in _body(out).output] == ["t_y"]


def test_an_outer_tensor_of_unknown_type_keeps_the_body(caplog):
    custom = helper.make_node("Mystery", ["x"], ["x2"], domain="my.ops", name="mystery")
    model = if_model([custom])
    for attr in model.graph.node[-1].attribute:  # the branches read x2 instead of x
        for node in attr.g.node:
            node.input[:] = ["x2" if t == "x" else t for t in node.input]
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    with caplog.at_level(logging.INFO, logger="graphopt.subgraphs"):
        out = graphopt.optimize(model)
    assert len(_body(out, 1).node) == 3
    assert "outer value 'x2' has no known tensor type" in caplog.text


def test_a_domain_a_body_rewrite_imports_reaches_the_model():
    """ort-fusions makes Conv + Relu a com.microsoft FusedConv inside the branches; the model
    (whose own nodes use no such op) must import the domain, or onnxruntime refuses it."""
    model = if_model()
    for attr in model.graph.node[0].attribute:
        g = attr.g
        old = g.node[2]  # Identity(bn) → y becomes Relu(bn) → y
        g.node[2].CopyFrom(helper.make_node("Relu", list(old.input), list(old.output), name="relu"))
    out = graphopt.optimize(model, "ort-fusions")
    assert [n.op_type for n in _body(out).node] == ["FusedConv"]
    assert "com.microsoft" in {o.domain for o in out.opset_import}
    feeds = {"x": _x(), "cond": np.array(False)}
    np.testing.assert_allclose(_run(out, feeds)[0], _run(model, feeds)[0], rtol=1e-4, atol=1e-5)


def test_new_names_never_shadow_a_name_a_body_defines():
    """ONNX wants one name per tensor across scopes: onnx.checker and onnxruntime refuse a model
    whose body defines a name an earlier node of the outer graph already produced."""
    graph = Graph(if_model())
    assert graph.unique_name("t_bn") != "t_bn"
    assert graph.unique_name("e_W") != "e_W"
    assert graph.unique_name("fresh") == "fresh"
    assert {"t_c", "e_y"} <= graph.names_in_use()


def test_refresh_subgraph_reads_follows_an_edited_body():
    graph = Graph(if_model())
    assert "if" in graph.consumers["x"]
    node = graph.nodes["if"]
    for attr in node.attribute:  # the branches now read a constant of their own, not x
        attr.g.initializer.append(numpy_helper.from_array(np.zeros(SHAPE, np.float32), "z"))
        for n in attr.g.node:
            n.input[:] = ["z" if t == "x" else t for t in n.input]
    graph.refresh_subgraph_reads(node)
    assert "x" not in graph.consumers
    assert graph.unique_name("z") != "z"


@pytest.mark.realmodel
def test_silero_vad_network_inside_if_branches():
    """Silero VAD keeps its whole network in the branches of an If on the sample rate, with Ifs
    nested three deep: 689 nodes of which 5 at the top. Both branches give the original's
    outputs, and a second run changes nothing."""
    from graphopt.realmodels import fetch_model, vad_inputs

    model = onnx.load(str(fetch_model("silero_vad")))
    before = node_count(model.graph)
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
    after = node_count(out.graph)
    assert after < before * 0.5, (before, after)  # measured: 689 → 288
    assert node_count(graphopt.optimize(out).graph) == after
    for feeds in vad_inputs(4):  # 16 kHz and 8 kHz chunks: both branches
        for a, b in zip(_run(model, feeds), _run(out, feeds), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_cli_counts_the_nodes_of_the_bodies(tmp_path, capsys):
    from graphopt.cli import main

    src, dst = tmp_path / "if.onnx", tmp_path / "out.onnx"
    onnx.save(if_model(), src)
    assert main(["optimize", str(src), "-o", str(dst)]) == 0
    out = capsys.readouterr().out
    assert "1 node (7 with If/Loop/Scan bodies) -> 1 node (3 with If/Loop/Scan bodies)" in out
    assert main(["optimize", str(src), "-o", str(dst), "--no-subgraphs"]) == 0
    out = capsys.readouterr().out
    assert "1 node (7 with If/Loop/Scan bodies) -> 1 node (7 with If/Loop/Scan bodies)" in out


def test_verify_each_and_dump_dir_see_the_model_with_its_optimized_bodies(tmp_path):
    """A branch output without a shape (silero-vad's nested Ifs have some without a type) is
    valid in a body but not as a model's own output: `verify_each` checks the model once its
    bodies are back in place, not each body as a model; `dump_dir` writes that model too."""
    model = if_model()
    for attr in model.graph.node[0].attribute:
        attr.g.output[0].type.tensor_type.ClearField("shape")
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model, verify_each=True, dump_dir=tmp_path)
    assert [n.op_type for n in _body(out).node] == ["Conv"]
    dumps = sorted(p.name for p in tmp_path.iterdir())
    assert dumps[0] == "01-optimize-bodies.onnx"
    dumped = onnx.load(str(tmp_path / dumps[0]))
    assert [n.op_type for n in _body(dumped).node] == ["Conv"]


def test_verify_each_names_the_bodies_step_when_an_optimized_body_is_invalid():
    """A body rewrite onnx.checker refuses is reported as the bodies step's."""

    @dataclass
    class BreakBodies(Pass):
        """Makes every node of a body an op no opset has (a broken pass)."""

        name: ClassVar[str] = "test-break-bodies"

        def run(self, graph: Graph, ctx: PassContext) -> PassResult:
            if not ctx.in_body:
                return PassResult(False)
            for node in graph.nodes.values():
                node.op_type = "NoSuchOp"
            return PassResult(True)

    with pytest.raises(VerifyError, match="after pass optimize-bodies"):
        graphopt.optimize(if_model(), make_pipeline("t", [BreakBodies()]), verify_each=True)
