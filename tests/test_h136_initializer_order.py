"""`graphopt.optimize` reads no meaning into the order of the lists ONNX leaves unordered.

The initializer list, `graph.value_info`, `model.opset_import` and `model.metadata_props` are
sets in all but their encoding. Optimizing a model and a copy with those lists permuted must
give the same model up to the order of those same lists: the same nodes in the same order
(same names, inputs, outputs, attributes, bodies), the same initializers by name and value.

Found: CSE merged equal initializers into whichever came first in the list, so common_det's
two equal Reshape shapes kept `857` or `873` depending on the list's order (and a graph-output
initializer listed after its twin kept both alive).
"""

from __future__ import annotations

import random

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.realmodels import fetch_model
from tests.models_util import run

DETECTORS = ("common_det", "layout_cdla", "ppocr_det")
PIPELINES = ("default", "ort-cpu", "tensorrt")
SEEDS = (0, 1)


def _constants_lifted(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each `Constant(value=t)` node moved into the initializer list (in node
    order). layout_cdla and ppocr_det hold every weight and shape as a Constant node and no
    initializer, so only this form of them has an initializer list to permute; common_det has
    no Constant node and stays as it is."""
    lifted = onnx.ModelProto()
    lifted.CopyFrom(model)
    kept = []
    for node in lifted.graph.node:
        attrs = node.attribute
        if node.op_type == "Constant" and len(attrs) == 1 and attrs[0].name == "value":
            tensor = lifted.graph.initializer.add()
            tensor.CopyFrom(attrs[0].t)
            tensor.name = node.output[0]
        else:
            kept.append(node)
    del lifted.graph.node[:]
    lifted.graph.node.extend(kept)
    return lifted


def _permuted(model: onnx.ModelProto, seed: int, *fields: str) -> onnx.ModelProto:
    """A copy of `model` with each named repeated field ("graph.x" or "x" of the model)
    shuffled with `seed`."""
    rng = random.Random(seed)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for field in fields:
        owner, _, attr = field.rpartition(".")
        entries = getattr(copy.graph if owner else copy, attr)
        items = list(entries)
        before = [e.SerializeToString() for e in items]
        for _ in range(10):  # a permutation that moves something, where two entries differ
            rng.shuffle(items)
            if len(set(before)) < 2 or [e.SerializeToString() for e in items] != before:
                break
        del entries[:]
        entries.extend(items)
    return copy


def _sort_unordered(graph: onnx.GraphProto) -> None:
    """Sort `graph`'s initializers and value_info by name, in its bodies too."""
    for entries in (graph.initializer, graph.value_info):
        items = sorted(entries, key=lambda e: (e.name, e.SerializeToString(deterministic=True)))
        del entries[:]
        entries.extend(items)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _sort_unordered(attr.g)
            for body in attr.graphs:
                _sort_unordered(body)


def _canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with every unordered list sorted (If bodies' value_info included)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    _sort_unordered(copy.graph)
    opsets = sorted(copy.opset_import, key=lambda o: (o.domain, o.version))
    del copy.opset_import[:]
    copy.opset_import.extend(opsets)
    props = sorted(copy.metadata_props, key=lambda p: (p.key, p.value))
    del copy.metadata_props[:]
    copy.metadata_props.extend(props)
    return copy


def _assert_same_up_to_order(expected: onnx.ModelProto, got: onnx.ModelProto) -> None:
    """The same nodes in the same order, the same initializers by name, and the same model
    once the unordered lists are sorted."""

    def wiring(m: onnx.ModelProto) -> list[tuple[str, list[str], list[str]]]:
        return [(n.name, list(n.input), list(n.output)) for n in m.graph.node]

    def initializers(m: onnx.ModelProto) -> dict[str, bytes]:
        return {t.name: t.SerializeToString(deterministic=True) for t in m.graph.initializer}

    def nodes(m: onnx.ModelProto) -> list[bytes]:
        return [n.SerializeToString(deterministic=True) for n in m.graph.node]

    assert wiring(got) == wiring(expected)
    assert initializers(got) == initializers(expected)
    got, expected = _canonical(got), _canonical(expected)
    assert nodes(got) == nodes(expected)  # attributes and bodies too
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )  # value_info, inputs, outputs, opsets, metadata, functions


@pytest.fixture(scope="module")
def lifted_detector() -> dict[str, onnx.ModelProto]:
    return {name: _constants_lifted(onnx.load(str(fetch_model(name)))) for name in DETECTORS}


@pytest.mark.realmodel
@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("detector", DETECTORS)
def test_optimize_ignores_initializer_order(
    lifted_detector: dict[str, onnx.ModelProto], detector: str, pipeline: str
) -> None:
    model = lifted_detector[detector]
    assert len(model.graph.initializer) > 100
    expected = graphopt.optimize(model, pipeline)
    for seed in SEEDS:
        got = graphopt.optimize(_permuted(model, seed, "graph.initializer"), pipeline)
        _assert_same_up_to_order(expected, got)


@pytest.mark.realmodel
@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("detector", DETECTORS)
def test_optimize_ignores_value_info_opset_and_metadata_order(
    lifted_detector: dict[str, onnx.ModelProto], detector: str, pipeline: str
) -> None:
    model = onnx.ModelProto()
    model.CopyFrom(lifted_detector[detector])
    # shapes of the intermediate tensors (common_det ships 278), and more than one entry in
    # each of the model's lists, so that a permutation moves something
    if not model.graph.value_info:
        model = onnx.shape_inference.infer_shapes(model)
    assert len(model.graph.value_info) > 100
    if len(model.opset_import) < 2:
        model.opset_import.add(domain="ai.onnx.ml", version=3)
    for key in ("author", "license", "version"):
        model.metadata_props.add(key=key, value=f"{key} of {detector}")
    fields = ("graph.value_info", "opset_import", "metadata_props")
    expected = graphopt.optimize(model, pipeline)
    got = graphopt.optimize(_permuted(model, 0, *fields), pipeline)
    _assert_same_up_to_order(expected, got)


def _twins_model(order: tuple[str, ...], output: str | None = None) -> onnx.ModelProto:
    """y = (x + a) * b + c, with a, b and c equal: which one survives CSE's merge?"""
    value = np.arange(1, 5, dtype=np.float32)
    inits = {n: numpy_helper.from_array(value, n) for n in ("a", "b", "c")}
    nodes = [
        helper.make_node("Add", ["x", "a"], ["s"], name="add"),
        helper.make_node("Mul", ["s", "b"], ["p"], name="mul"),
        helper.make_node("Add", ["p", "c"], ["y"], name="add2"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])]
    if output is not None:
        outputs.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, [4]))
    graph = helper.make_graph(
        nodes,
        "twins",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        outputs,
        [inits[n] for n in order],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _cse(model: onnx.ModelProto) -> onnx.ModelProto:
    return run(model, "eliminate-common-subexpressions")


@pytest.mark.parametrize("order", [("a", "b", "c"), ("c", "b", "a"), ("b", "c", "a")])
def test_survivor_is_the_twin_read_first(order: tuple[str, ...]) -> None:
    out = _cse(_twins_model(order))
    assert [t.name for t in out.graph.initializer] == ["a"]
    assert [list(n.input) for n in out.graph.node] == [["x", "a"], ["s", "a"], ["p", "a"]]


@pytest.mark.parametrize("order", [("a", "b", "c"), ("c", "b", "a"), ("b", "c", "a")])
def test_a_graph_output_twin_survives(order: tuple[str, ...]) -> None:
    """A twin that is a graph output keeps its name, so the others merge into it wherever it
    is listed (it was merged into only when listed first, otherwise two stayed)."""
    out = _cse(_twins_model(order, output="c"))
    assert [t.name for t in out.graph.initializer] == ["c"]
    assert [list(n.input) for n in out.graph.node] == [["x", "c"], ["s", "c"], ["p", "c"]]
    assert [o.name for o in out.graph.output] == ["y", "c"]
