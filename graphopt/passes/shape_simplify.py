"""Shape subgraphs (`Shape → Gather/Slice → Unsqueeze → Concat → Reshape`) become constants.

Exporters compute Reshape/Resize/Expand targets at run time from `Shape(x)`. Where the dims
those subgraphs read are statically known, the reads become constants and the rest of the
subgraph folds away (this pass runs the constant folder from what it creates). Dims that are
dynamic are left alone: `Gather(Shape(x), 0)` with a symbolic batch stays, while
`Gather(Shape(x), 1)` of a static channel count becomes a constant.

What it does not do: symbolic arithmetic on dynamic dims (e.g. proving `N*C/C == N`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from graphopt.ir import Graph
from graphopt.passes._folding_ops import node_slice_parameters, onnx_slice
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import (
    DEFAULT_SIZE_LIMIT,
    ConstantFolder,
    initializers_allowed,
    is_default_domain,
    shape_value,
)

Dims = tuple[int | str | None, ...]


def _shape_dims(graph: Graph, ctx: PassContext, tensor: str) -> Dims | None:
    """The dims `tensor` holds when it is the output of a `Shape` node (symbolic ones too)."""
    from graphopt.analysis.shapes import shape_facts

    node = graph.producer_node(tensor)
    if node is None or node.op_type != "Shape" or not is_default_domain(node):
        return None
    dims = shape_facts(graph, ctx).shape(node.input[0])
    if dims is None:
        return None
    start, end = graph.attr(node, "start", 0), graph.attr(node, "end")
    return tuple(dims[start:end])


def _picked_dims(graph: Graph, ctx: PassContext, node: onnx.NodeProto) -> np.ndarray | None:
    """The value of `Gather(Shape(x), c)` / `Slice(Shape(x), ...)` when the dims it picks are
    static (the others may be dynamic)."""
    if not node.input or not is_default_domain(node):
        return None
    if node.op_type == "Gather" and len(node.input) == 2:
        indices = graph.constant(node.input[1])
        if indices is None or graph.attr(node, "axis", 0) not in (0, -1):
            return None
        dims = _shape_dims(graph, ctx, node.input[0])
        if dims is None:
            return None
        n = len(dims)
        idx = indices.astype(np.int64)
        if np.any((idx < -n) | (idx >= n)):
            return None
        picked = [dims[int(i)] for i in np.where(idx < 0, idx + n, idx).reshape(-1)]
        if not all(isinstance(d, int) for d in picked):
            return None
        return np.array(picked, dtype=np.int64).reshape(idx.shape)
    if node.op_type == "Slice":
        params = node_slice_parameters(node, graph.constant, graph.opset_version(""))
        if params is None:
            return None
        starts, ends, axes, steps = params
        if len(starts) != 1 or axes[0] not in (0, -1) or steps[0] == 0:
            return None
        dims = _shape_dims(graph, ctx, node.input[0])
        if dims is None:
            return None
        picked_dims = list(dims)[onnx_slice(len(dims), starts[0], ends[0], steps[0])]
        if not all(isinstance(d, int) for d in picked_dims):
            return None
        return np.array(picked_dims, dtype=np.int64)
    return None


@register_pass
@dataclass
class SimplifyShapeSubgraphs(Pass):
    """Replace reads of static dims by constants, then fold what they feed.

    Shape(x)[start:end] with those dims static                 ⇒  constant
    Gather(Shape(x), c) / Slice(Shape(x), …) picking static dims  ⇒  constant
    then constant folding from the new constants (Unsqueeze, Concat, Cast, arithmetic, ...).
    """

    name = "simplify-shape-subgraphs"
    opt_level = 1
    size_limit: int = DEFAULT_SIZE_LIMIT

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        readers = [
            n
            for n in graph.nodes.values()
            if n.op_type in ("Shape", "Size", "Gather", "Slice") and is_default_domain(n)
        ]
        if not any(n.op_type in ("Shape", "Size") for n in readers):
            return PassResult(False, {"replaced": 0, "folded": 0})
        if not initializers_allowed(graph, ctx, self.name):
            return PassResult(False, {"replaced": 0, "folded": 0})
        replaced = 0
        seeds: list[onnx.NodeProto] = []
        for node in readers:
            if node.name not in graph.nodes or not node.output or not node.output[0]:
                continue
            out = node.output[0]
            if node.op_type in ("Shape", "Size"):
                if graph.is_constant(node.input[0]):
                    continue  # left to constant folding
                value = shape_value(graph, ctx, node)
            else:
                value = _picked_dims(graph, ctx, node)
            if value is None:
                continue
            if graph.is_graph_output(out):
                ctx.note(self.name, node.name, "refused", f"{out!r} is a graph output")
                continue
            seeds.extend(graph.consumer_nodes(out))
            graph.remove_node(node)
            graph.add_initializer(out, value, exact_name=True)
            ctx.note(self.name, node.name, "applied")
            replaced += 1
        folder = ConstantFolder(graph, ctx, self.name, self.size_limit)
        folder.run(n for n in seeds if n.name in graph.nodes)
        return PassResult(
            replaced + folder.folded > 0, {"replaced": replaced, "folded": folder.folded}
        )
