"""CSE asks `noop.shadowed` whether a body would read a merged initializer for its own tensor
only when the graph has If/Loop/Scan nodes: without bodies nothing can be shadowed, and the
question lists the readers of both names for every merge (layout_cdla: 383 merges, mostly
into a few shared scalars whose reader lists grow with each)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir import Graph
from graphopt.passes import cse
from graphopt.passes.base import PassContext
from graphopt.passes.cse import EliminateCommonSubexpressions


def _twins(with_body: bool) -> onnx.ModelProto:
    """y_i = x + c_i for three equal constants c_i (and, `with_body`, an If whose branches
    read c_0 and define their own c_1)."""
    three = np.full(4, 3.0, np.float32)
    inits = [numpy_helper.from_array(three, f"c{i}") for i in range(3)]
    nodes = [helper.make_node("Add", ["x", f"c{i}"], [f"y{i}"]) for i in range(3)]
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [4]) for i in range(3)]
    if with_body:
        body = helper.make_graph(
            [helper.make_node("Add", ["c0", "c1"], ["b"])],
            "branch",
            [],
            [helper.make_tensor_value_info("b", TensorProto.FLOAT, [4])],
            [numpy_helper.from_array(three, "c1")],
        )
        nodes.append(helper.make_node("If", ["cond"], ["z"], then_branch=body, else_branch=body))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [4]))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])]
    if with_body:
        inputs.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []
    real = cse.shadowed

    def counting(graph: Graph, old: str, new: str) -> bool:
        asked.append((old, new))
        return real(graph, old, new)

    monkeypatch.setattr(cse, "shadowed", counting)
    return asked


def test_without_bodies_twins_merge_without_asking(monkeypatch):
    asked = _asked(monkeypatch)
    graph = Graph(_twins(with_body=False))
    result = EliminateCommonSubexpressions().run(graph, PassContext())
    assert result.stats["initializers"] == 2
    assert asked == []
    assert [graph.inputs_of(graph.producer[f"y{i}"]) for i in range(3)] == [("x", "c0")] * 3


def test_with_a_body_each_merge_is_still_asked(monkeypatch):
    asked = _asked(monkeypatch)
    graph = Graph(_twins(with_body=True))
    result = EliminateCommonSubexpressions().run(graph, PassContext())
    assert asked == [("c1", "c0"), ("c2", "c0")]
    # the body defines a c1 of its own: c1 is not renamed to c0 (shadowed); c2 merges
    assert result.stats["initializers"] == 1
    assert set(graph.initializers) == {"c0", "c1"}
