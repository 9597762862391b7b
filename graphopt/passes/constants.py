"""`Constant` nodes become initializers of the same name.

Exporters such as paddle2onnx emit every weight and scalar as a `Constant` node (PP-PicoDet's
layout model has 878 of them); as initializers they are visible to every constant-aware pass,
deduplicated by CSE, and cost nothing at load time. The tensor bytes are copied, never decoded.

When a pipeline starts with this pass, `graphopt.optimize` has the graph converted while it
is indexed (`Graph(..., adopt_constants=True)`: the same tensors in the same order, the nodes
never indexed) and the pass reports those conversions.

What it does not do: convert sparse (`sparse_value`) or string (`value_string(s)`) constants,
or a Constant whose output is a graph output (it stays a node, so the output keeps a producer).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from graphopt.ir import Graph
from graphopt.ir.nodes import constant_tensor
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import initializers_allowed


def adopt_tensor(graph: Graph, name: str, tensor: onnx.TensorProto) -> None:
    """Add a copy of `tensor` as initializer `name` (the name must be free or just released).

    Like `Graph.add_initializer` with `exact_name=True`, minus the numpy round trip: the bytes
    are copied as they are, whatever the element type.
    """
    graph.adopt_tensors(((name, tensor),))


@register_pass
@dataclass
class ConstantsToInitializers(Pass):
    """Replace each `Constant` node by an initializer holding its value, under its output name.

    y = Constant(value=v)  ⇒  initializer y := v        (value, value_float(s), value_int(s))
    """

    name = "constants-to-initializers"
    opt_level = 0

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        # what `Graph(..., adopt_constants=True)` converted while indexing, for this pass
        # (the API's optimize does that when the pipeline starts with this pass)
        indexed, graph.adopted_constants = graph.adopted_constants, 0
        if not initializers_allowed(graph, ctx, self.name):
            return PassResult(False)
        skipped = 0
        adopted: list[tuple[str, onnx.TensorProto]] = []
        outputs = set(graph.graph_outputs)
        for name, node in list(graph.nodes.items()):
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            produced = graph.outputs_of(name)
            out = produced[0] if produced else ""
            if not out:
                continue
            if out in outputs:
                ctx.note(self.name, node.name, "refused", f"{out!r} is a graph output")
                skipped += 1
                continue
            tensor = constant_tensor(node)
            if tensor is None:
                ctx.note(self.name, node.name, "refused", "sparse or string constant")
                skipped += 1
                continue
            graph.remove_node(node)
            adopted.append((out, tensor))  # the removed node stays alive until the commit
        graph.adopt_tensors(adopted)
        converted = len(adopted) + indexed
        return PassResult(converted > 0, {"converted": converted, "skipped": skipped})
