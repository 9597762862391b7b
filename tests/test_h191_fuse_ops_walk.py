"""H191: FuseOps' post-dominator tree (`fuse_ops._post_dominators`) without TVM's walk up the
tree to the consumers' least common ancestor, which was quadratic on a "comb" (n teeth, each
read by the first and the last node of an n-node chain). The parents come from Lengauer–Tarjan,
the combined patterns from per-kind nearest-ancestor depths. Checked against TVM's walk (kept
here as the oracle, as it was in graphopt/analysis/fuse_ops.py): the same parents and depths,
the same patterns wherever a parent is set (the only ones the phases read), and the same fusion
groups, on random models, combs and every real model; the work is linear in the comb's size."""

from __future__ import annotations

import importlib
import random
import sys

import onnx
import pytest

from graphopt.analysis import dominators as dom
from graphopt.analysis import fusion_groups
from graphopt.analysis.op_kinds import OpKind
from graphopt.analysis.shapes import shape_facts
from graphopt.ir import Graph
from graphopt.realmodels import MODELS, ZOO, fetch_model
from tests.test_fuseops_review2_random import _random_model
from tests.test_h191_post_dominators import comb, comb_with_outputs, combs, detector_comb

fo = importlib.import_module("graphopt.analysis.fuse_ops")  # (fuse_ops is also a function)


def _tvm_walk(vertices, live_only=False):  # type: ignore[no-untyped-def]
    """TVM's `DominatorTree::PostDom` as graphopt ran it before H191 (the oracle)."""
    tree = [None] * len(vertices)

    def lca(a, b, pattern):  # type: ignore[no-untyped-def]
        while a != b:
            if a is None or b is None:
                return None
            na, nb = tree[a], tree[b]
            if na.depth < nb.depth:
                pattern[0] = max(pattern[0], nb.pattern)
                b = nb.parent
            elif nb.depth < na.depth:
                pattern[0] = max(pattern[0], na.pattern)
                a = na.parent
            else:
                pattern[0] = max(pattern[0], na.pattern, nb.pattern)
                a, b = na.parent, nb.parent
        return a

    for v in reversed(vertices):
        if v.extern_ref or (live_only and v.dead):
            tree[v.index] = fo._DomNode(None, 1, OpKind.OPAQUE)
            continue
        pattern = [OpKind.ELEMWISE]
        parent = None
        consumers = v.outputs
        if live_only:
            consumers = [(c, edge) for c, edge in consumers if not vertices[c].dead]
        for k, (consumer, edge) in enumerate(consumers):
            parent = consumer if k == 0 else lca(parent, consumer, pattern)
            pattern[0] = max(pattern[0], edge)
        depth = 1 if parent is None else tree[parent].depth + 1
        tree[v.index] = fo._DomNode(parent, depth, pattern[0])
    return tree


def _same_as_tvm(model: onnx.ModelProto | Graph, caps: tuple[int, ...] = (256, 3)) -> int:
    """The trees (both modes) and the groups (each cap) are TVM's walk's; returns how many
    vertices have a parent and a pattern above ELEMWISE (so that a test sees it checked some)."""
    graph = model if isinstance(model, Graph) else Graph(model)
    vertices = fo._indexed_graph(graph, shape_facts(graph))
    rich = 0
    for live_only in (False, True):
        new = fo._post_dominators(vertices, live_only)
        old = _tvm_walk(vertices, live_only)
        assert [(t.parent, t.depth) for t in new] == [(t.parent, t.depth) for t in old]
        assert [t.pattern for t in new if t.parent is not None] == [
            t.pattern for t in old if t.parent is not None
        ]
        rich += sum(t.parent is not None and t.pattern > OpKind.ELEMWISE for t in new)
    for cap in caps:
        groups = [(g.nodes, g.pattern, g.anchor) for g in fusion_groups(graph, cap)]
        walk = fo._post_dominators
        fo._post_dominators = _tvm_walk
        try:
            before = [(g.nodes, g.pattern, g.anchor) for g in fusion_groups(graph, cap)]
        finally:
            fo._post_dominators = walk
        assert groups == before
    return rich


def test_random_models_same_trees_and_groups():
    rich = 0
    for seed in range(120):
        rich += _same_as_tvm(_random_model(random.Random(seed)))
    assert rich > 100


@pytest.mark.parametrize(
    "model",
    [comb(40), combs(3, 30), comb_with_outputs(60, 3), detector_comb(40), detector_comb(9)],
    ids=["comb", "three-combs", "outputs", "detector", "detector-small"],
)
def test_combs_same_trees_and_groups(model):
    _same_as_tvm(model, caps=(256, 16, 3))


def test_comb_groups():
    # teeth Neg, h0 Sum, Relu/Sigmoid chain, last Sum: everything post-dominated by the last
    # Sum, elementwise/broadcast all the way: one group under the cap, the cap's tail otherwise
    n = 40
    whole = fusion_groups(comb(n))
    assert len(whole) == 1 and len(whole[0].nodes) == 2 * n
    capped = fusion_groups(comb(n), 16)
    assert sorted(len(g.nodes) for g in capped)[-1] == 16
    assert capped[-1].nodes[-1] == f"h{n - 1}"


@pytest.mark.realmodel
@pytest.mark.parametrize("name", [*MODELS, *ZOO])
def test_real_models_same_trees_and_groups(name):
    graph = Graph(onnx.load(str(fetch_model(name))))
    assert _same_as_tvm(graph, caps=(256, 8)) > 0


def _lines_run(vertices) -> int:  # type: ignore[no-untyped-def]
    """Lines executed in fuse_ops.py and dominators.py building FuseOps' live tree."""
    files = (fo.__file__, dom.__file__)
    count = 0

    def local(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        count += event == "line"
        return local

    def call(frame, event, arg):  # type: ignore[no-untyped-def]
        return local if frame.f_code.co_filename in files else None

    sys.settrace(call)
    try:
        fo._post_dominators(vertices, live_only=True)
    finally:
        sys.settrace(None)
    return count


def test_comb_tree_takes_work_linear_in_its_size():
    # TVM's walk climbed the chain from h0 to the last node once per tooth: ~n² steps
    def vertices(n: int):  # type: ignore[no-untyped-def]
        graph = Graph(comb(n))
        return fo._indexed_graph(graph, shape_facts(graph))

    a, b = _lines_run(vertices(500)), _lines_run(vertices(1000))
    assert b < 2.3 * a  # twice the nodes, about twice the work (quadratic: 4×)
    assert b < 200 * 2000  # lines per vertex (130 measured)
