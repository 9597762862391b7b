"""Expose intermediate tensors as extra graph outputs (for distillation hints and debugging).

Chosen tensors are appended to the graph outputs, after the existing ones, which keep their
names, order, dtypes and shapes. Each new output gets the dtype and shape that shape inference
(`graphopt.analysis.shapes`) knows for it.

What it does not do: expose graph inputs or constants (nothing to learn from them; they are
skipped and noted), or tensors inside subgraphs. Making a tensor an output can keep a runtime
from fusing through it; that is the point of asking for it.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import onnx

from graphopt.errors import PassError
from graphopt.ir import Graph
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass

log = logging.getLogger("graphopt.passes")


@register_pass
@dataclass
class ExposeTensors(Pass):
    """Append chosen intermediate tensors to the graph outputs.

    outputs' = outputs ++ [t ∈ chosen | t ∉ outputs], in order of first mention, with
    chosen = names ∪ {outputs of nodes n | op(n) ∈ op_types} (topological order)
              ∪ {t produced in a fusion group G and read outside G}, for each group G of
                `graphopt.analysis.fuse_ops` (when `fusion_group_outputs`).
    """

    name = "expose-tensors"
    in_bodies = False  # adds graph outputs: a body's are its owner's
    opt_level = 0
    names: list[str] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)
    fusion_group_outputs: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        missing = [n for n in self.names if n not in graph.producer and not _known(graph, n)]
        if missing:
            inner = _in_bodies(graph, missing)
            where = (
                f" (the If/Loop/Scan body of {inner[1]!r} computes {inner[0]!r}: only the "
                "main graph's tensors can become outputs)"
                if inner
                else ""
            )
            raise PassError(
                f"no tensor named {', '.join(map(repr, missing))} in the graph{where}",
                pass_name=self.name,
            )
        chosen = list(self.names)
        if self.op_types:
            wanted = set(self.op_types)
            present: set[str] = set()
            for node in graph.toposort():
                present.add(node.op_type)
                if node.op_type in wanted:
                    chosen.extend(o for o in node.output if o)
            _warn_unmatched(self.op_types, present)
        if self.fusion_group_outputs:
            chosen.extend(_fusion_group_outputs(graph, ctx))
        added = self._append(graph, ctx, chosen)
        return PassResult(bool(added), {"exposed": added})

    def _append(self, graph: Graph, ctx: PassContext, chosen: Iterable[str]) -> int:
        present = set(graph.graph_outputs)
        fresh = []
        for name in dict.fromkeys(chosen):
            if name in present:
                continue
            if name not in graph.producer or graph.is_constant(name):
                ctx.note(self.name, name, "refused", "a graph input or constant, not computed")
                continue
            fresh.append(name)
        if not fresh:
            return 0
        from graphopt.analysis.shapes import shape_facts

        facts = shape_facts(graph, ctx)
        for name in fresh:
            dtype = facts.dtype(name)
            if not dtype:
                raise PassError(
                    f"cannot tell the dtype of tensor {name!r}, so it cannot become an output",
                    pass_name=self.name,
                    node=graph.producer[name],
                )
            shape = facts.shape(name)
            vi = onnx.helper.make_tensor_value_info(
                name, dtype, None if shape is None else [d if d is not None else "" for d in shape]
            )
            if shape is not None:
                for dim, d in zip(vi.type.tensor_type.shape.dim, shape, strict=True):
                    if d is None:
                        dim.ClearField("dim_param")
            graph.proto.output.append(vi)
            graph.graph_outputs.append(name)
            ctx.note(self.name, name, "applied")
        return len(fresh)


def _warn_unmatched(op_types: Iterable[str], present: set[str]) -> None:
    """Warn of each op type no node of the graph has: it exposes nothing (`Reluu` for
    `Relu` said nothing at all), with the graph's op it most resembles."""
    for op in dict.fromkeys(op_types):
        if op in present:
            continue
        close = difflib.get_close_matches(op, sorted(present), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        log.warning("expose-tensors: no node has op type %r%s; it exposes nothing", op, hint)


def _in_bodies(graph: Graph, names: list[str]) -> tuple[str, str] | None:
    """(tensor, main-graph node) for the first of `names` some If/Loop/Scan body inside that
    node computes (None if none does): such a name is no missing tensor, only out of reach."""
    from graphopt.ir.nodes import nested_bodies, subgraphs

    wanted = set(names)
    for node in graph.proto.node:
        for body in subgraphs(node):
            for inner in (body, *nested_bodies(body)):
                found = wanted.intersection(o for n in inner.node for o in n.output)
                if found:
                    return min(found, key=names.index), node.name
    return None


def _known(graph: Graph, name: str) -> bool:
    return name in graph.initializers or graph.is_graph_input(name)


def _fusion_group_outputs(graph: Graph, ctx: PassContext) -> list[str]:
    """Tensors that leave each fusion group (read outside it), in group order."""
    from graphopt.analysis.fuse_ops import fuse_ops

    groups = fuse_ops(graph, ctx=ctx)
    out: list[str] = []
    for group in groups:
        members = set(group)
        for node_name in group:
            node = graph.nodes.get(node_name)
            if node is None:
                continue
            for tensor in node.output:
                if not tensor:
                    continue
                readers = graph.consumers.get(tensor, {})
                if any(r not in members for r in readers):
                    out.append(tensor)
    return out
