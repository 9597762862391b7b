"""The cost of optimizing bodies nested in bodies grows with the depth, not with depth × size
(session 13): layout_cdla wrapped in 31 nested Ifs took 1.9 s (4.1 s on a busy host), as every
level ran ONNX shape inference over everything inside it, the detector included: 31 inferences
of it. `graphopt.subgraphs` now infers, for typing a body's outer reads, only the nodes those
reads depend on, and infers the whole graph for the passes after the bodies only when one of
them asks (over a copy of the graph as it was: the facts they meet are those they met before).
A body's model is built again from its body for that, not copied (`PassContext.rebuild`).
What is counted here is the nodes shape inference is run over (bodies included) and the
copies kept, not time."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import graphopt
from graphopt import subgraphs
from graphopt.analysis.shapes import shape_facts
from graphopt.ir import Graph
from graphopt.ir.graph import node_count
from graphopt.passes.base import PassContext
from graphopt.pipeline import PassManager, load_pipeline
from graphopt.subgraphs import optimize_bodies
from tests.conftest import assert_same_outputs

F, B, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.BOOL, onnx.TensorProto.INT64
vi = oh.make_tensor_value_info


def _nested(model: onnx.ModelProto, depth: int) -> onnx.ModelProto:
    """`model`'s graph as the then-branch of an If, `depth` Ifs deep (each level's outputs
    named anew; every else-branch passes the first input on to every output)."""
    inputs = list(model.graph.input)
    names = [o.name for o in model.graph.output]
    body = onnx.GraphProto()
    body.CopyFrom(model.graph)
    del body.input[:]  # an If body takes no inputs: it reads the outer scope
    for level in range(depth):
        other = oh.make_graph(
            [oh.make_node("Identity", [inputs[0].name], [f"{n}_else{level}"]) for n in names],
            f"else{level}",
            [],
            [vi(f"{n}_else{level}", F, None) for n in names],
        )
        outs = [f"{n}_if{level}" for n in names]
        node = oh.make_node(
            "If", ["cond"], outs, name=f"if{level}", then_branch=body, else_branch=other
        )
        body = oh.make_graph([node], f"level{level}", [], [vi(n, F, None) for n in outs])
    body.input.extend([*inputs, vi("cond", B, [])])
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.CopyFrom(body)
    return out


def _innermost(model: onnx.ModelProto, depth: int) -> onnx.GraphProto:
    g = model.graph
    for _ in range(depth):
        g = next(a.g for a in g.node[0].attribute if a.name == "then_branch")
    return g


def _nodes_inferred(monkeypatch: pytest.MonkeyPatch, model: onnx.ModelProto):
    """optimize(model), and the nodes ONNX shape inference was run over (bodies included)."""
    real = onnx.shape_inference.infer_shapes
    seen: list[int] = []

    def counting(m: onnx.ModelProto, *args, **kwargs):
        seen.append(node_count(m.graph))
        return real(m, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(onnx.shape_inference, "infer_shapes", counting)
        return graphopt.optimize(model), sum(seen)


@pytest.mark.realmodel
def test_nested_ifs_infer_what_each_level_adds_not_the_detector_again(real_model, monkeypatch):
    detector = onnx.load(real_model("layout_cdla"))
    alone = graphopt.optimize(detector)
    counts = {}
    for depth in (1, 2, 4, 8):
        optimized, counts[depth] = _nodes_inferred(monkeypatch, _nested(detector, depth))
        # the detector is optimized at every depth as it is alone (333 of its 1493 nodes)
        inner = _innermost(optimized, depth)
        assert [n.op_type for n in inner.node] == [n.op_type for n in alone.graph.node]
        assert len(inner.initializer) == len(alone.graph.initializer)
    # each level adds an If and an else-branch of 8 Identity nodes: at most those are inferred
    # again per level (the parent inferred the 1493-node detector once per level: 12268 at 8)
    per_level = 1 + len(detector.graph.output)
    for depth in (2, 4, 8):
        assert counts[depth] - counts[1] <= (depth - 1) * per_level, counts


def _if_model() -> onnx.ModelProto:
    """r = Relu(x); z = If(cond) { Relu(Reshape(x, Abs([-1, 4]))) } else { Identity(x) };
    y = Add(z, r), x: [1, 4]. Inference gives z no shape (it does not compute Abs); the
    then-branch optimized is Relu(x), and z [1, 4]."""
    then = oh.make_graph(
        [
            oh.make_node("Abs", ["c"], ["s"]),
            oh.make_node("Reshape", ["x", "s"], ["m"]),
            oh.make_node("Relu", ["m"], ["t"]),
        ],
        "then",
        [],
        [vi("t", F, None)],
        [oh.make_tensor("c", I64, [2], [-1, 4])],
    )
    other = oh.make_graph([oh.make_node("Identity", ["x"], ["e"])], "else", [], [vi("e", F, None)])
    graph = oh.make_graph(
        [
            oh.make_node("Relu", ["x"], ["r"], name="relu"),
            oh.make_node("If", ["cond"], ["z"], name="if", then_branch=then, else_branch=other),
            oh.make_node("Add", ["z", "r"], ["y"], name="add"),
        ],
        "g",
        [vi("x", F, [1, 4]), vi("cond", B, [])],
        [vi("y", F, None)],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


def _settled(facts) -> tuple[dict, dict]:
    names = set(facts.dtypes) | set(facts.shapes) | set(facts._pending)
    return {n: facts.dtype(n) for n in names}, {n: facts.shape(n) for n in names}


def test_passes_after_changed_bodies_meet_the_facts_of_the_graph_as_it_was():
    model = _if_model()
    before = shape_facts(Graph(onnx.ModelProto.FromString(model.SerializeToString())))
    graph = Graph(model)
    ctx = PassContext()
    changed = optimize_bodies(graph, ctx, PassManager(load_pipeline("default")).run)
    assert changed  # Abs folded, the Reshape to x's own shape dropped
    then = next(a.g for a in graph.nodes["if"].attribute if a.name == "then_branch")
    assert [n.op_type for n in then.node] == ["Relu"]
    # what a pass asking now is given: the facts inferred over the graph before the change
    assert _settled(shape_facts(graph, ctx)) == _settled(before)
    assert shape_facts(graph, ctx).shape("z") is None  # (inferred now: [1, 4])
    assert shape_facts(Graph(graph.snapshot())).shape("z") == (1, 4)


def _counting_full_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the copies of a whole graph `graphopt.subgraphs` keeps for inferring it later."""
    real = subgraphs._skeleton
    copies: list[int] = []

    def counting(graph, nodes=None, wanted=None):
        if nodes is None:
            copies.append(len(graph))
        return real(graph, nodes, wanted)

    monkeypatch.setattr(subgraphs, "_skeleton", counting)
    return copies


def test_a_body_model_is_built_again_for_its_facts_not_copied(monkeypatch):
    # a body's model is the body it was made of, which stays as it is while its run lasts:
    # PassContext.rebuild builds it again when a pass asks for its facts
    model = _if_model()
    original = model.SerializeToString()
    before = shape_facts(Graph(onnx.ModelProto.FromString(original)))
    copies = _counting_full_copies(monkeypatch)
    graph = Graph(model)
    ctx = PassContext(rebuild=lambda: Graph(onnx.ModelProto.FromString(original)))
    assert optimize_bodies(graph, ctx, PassManager(load_pipeline("default")).run)
    assert _settled(shape_facts(graph, ctx)) == _settled(before)
    assert shape_facts(graph, ctx).shape("z") is None
    assert copies == []


@pytest.mark.realmodel
def test_nested_ifs_copy_only_the_outermost_graph_for_later_facts(real_model, monkeypatch):
    # every level's graph holds the detector: a copy per level was a copy of it per level
    detector = onnx.load(real_model("layout_cdla"))
    copies = _counting_full_copies(monkeypatch)
    graphopt.optimize(_nested(detector, 4))
    assert copies == [1]  # the model's own graph (its one node: the outermost If)


def test_a_body_reading_an_outer_initializer_is_typed_and_optimized():
    # the then-branch also reads an initializer of the graph around it: no node computes it,
    # and it must still be typed (an outer read without a type keeps the body as it was)
    model = _if_model()
    then = next(a.g for a in model.graph.node[1].attribute if a.name == "then_branch")
    then.node.append(oh.make_node("Add", ["t", "outer_w"], ["t2"]))
    then.output[0].name = "t2"
    model.graph.initializer.append(oh.make_tensor("outer_w", F, [1, 4], [0.5, 1, 2, 3]))
    optimized = graphopt.optimize(model)
    body = next(a.g for a in optimized.graph.node[1].attribute if a.name == "then_branch")
    assert [n.op_type for n in body.node] == ["Relu", "Add"]
    feeds = {"x": np.array([[-1, 2, -3, 4]], np.float32)}
    for cond in (True, False):
        assert_same_outputs(model, optimized, {**feeds, "cond": np.array(cond)})
