"""Review 12: Q/DQ placement indexes the model once and runs shape inference once.

`plan` partitioned `graph.model` (a second `Graph` index and a second shape inference) and
typed tensors with a third, full `onnx.shape_inference` of the model with its weights; the
sensitivity search partitioned the model yet again. The placements must not change: on the
real detectors the route through the shared facts gives the placement the full inference gave.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphopt.ir import Graph
from graphopt.ir import graph as graph_module
from graphopt.quant import placement as placement_module
from graphopt.quant.placement import plan


def residual_model() -> onnx.ModelProto:
    """x → Conv → Relu → Conv → Sigmoid·x (SiLU) → + r1 → Conv → y."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["s2"], name="sig2"),
        helper.make_node("Mul", ["c2", "s2"], ["m2"], name="silu2"),
        helper.make_node("Add", ["m2", "r1"], ["a"], name="residual"),
        helper.make_node("Conv", ["a", "w3"], ["y"], name="conv3"),
    ]
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 16, 16])],
        [
            *(init("w1", 8, 3, 3, 3), init("b1", 8), init("w2", 8, 8, 3, 3), init("b2", 8)),
            init("w3", 4, 8, 1, 1),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counts = {"infer_shapes": 0, "graph_index": 0}
    infer = onnx.shape_inference.infer_shapes
    index = graph_module.Graph._index

    def counted_infer(*args, **kwargs):  # type: ignore[no-untyped-def]
        counts["infer_shapes"] += 1
        return infer(*args, **kwargs)

    def counted_index(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        counts["graph_index"] += 1
        return index(self, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", counted_infer)
    monkeypatch.setattr(graph_module.Graph, "_index", counted_index)
    return counts


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_plan_indexes_once_and_infers_once(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    model = residual_model()
    graph = Graph(model)
    counts = _counting(monkeypatch)
    p = plan(model, target, graph)
    # the given Graph is the only index; one shape inference (the parent: 2 and 1)
    assert counts == {"infer_shapes": 1, "graph_index": 0}
    # the placement itself: the SiLU output's Add input is fused into conv2's epilogue on
    # TensorRT, so only the Relu branch is quantized there
    assert set(p.nodes) >= {"conv1", "conv2", "conv3"}
    assert p.nodes["conv1"].weights == {1: 0}
    if target == "tensorrt":
        assert p.nodes["residual"].activations == [1]
    assert p.groups is not None
    assert any({"conv2", "sig2", "silu2"} <= set(g) for g in p.groups)


def test_sensitivity_groups_reuse_the_plans_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphopt.quant import sensitivity

    model = residual_model()
    graph = Graph(model)
    p = plan(model, "tensorrt", graph)
    calls = []
    monkeypatch.setattr(sensitivity, "_fusion_groups", lambda g: calls.append(g) or None)
    keyed = sensitivity.groups(graph, p)
    assert calls == []  # the plan's partition, not a new one
    assert keyed["conv2"] == [n for n in ["conv2", "silu2", "residual"] if n in p.nodes]


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "ppocr_det", "layout_cdla"])
def test_real_detectors_place_as_full_inference_types(real_model, name: str) -> None:  # type: ignore[no-untyped-def]
    """The shared facts type every tensor the placement asks about as the full shape inference
    of the model did, and the partition is the one of the model's own index."""
    from graphopt.analysis import fuse_ops, shape_facts
    from graphopt.quant.api import prepare

    proto = prepare(str(real_model(name)), "tensorrt")
    graph = Graph(proto)
    p = plan(proto, "tensorrt", graph)
    full = placement_module.tensor_types(proto)
    assert p.groups == fuse_ops(proto)
    facts = shape_facts(graph)
    typed = [t for t in [*graph.producer, *graph.initializers] if t in full]
    assert len(typed) > 100
    assert {t: facts.dtype(t) for t in typed} == {t: full[t] for t in typed}
    assert len(p.tensors(graph)) > 50
