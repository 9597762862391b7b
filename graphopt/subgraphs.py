"""Run a pipeline inside `If`/`Loop`/`Scan` bodies, each as a model of its own.

A body B of node n in graph G becomes the model M(B): B's nodes, initializers, inputs and
outputs, plus one graph input per name B reads from the scopes around it (typed from G's shape
facts), under G's model's IR version, opset imports and functions. The pipeline runs over M(B)
(so over B's own bodies first, recursively) with every name of the scopes around B reserved,
and only the passes that may run in a body (`Pass.in_bodies`: no new graph outputs, no layout
guard, no model-level functions). The result replaces B only when its interface is B's:

    inputs(M(B)') = inputs(B) ++ outer(B),  outputs(M(B)') = outputs(B) (names and types),
    outer(B') ⊆ outer(B)

otherwise B is kept as it was (logged). Opset domains the passes imported (com.microsoft for
FusedConv) are added to G's model; a body whose default-domain opset would change is kept.

What it does not do: hand outer constants into a body (there they are inputs, so nothing
folds across the scope boundary), inline an `If` whose condition is constant, or hoist
loop-invariant code out of a `Loop`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import onnx

from graphopt.analysis.shapes import ShapeFacts, shape_facts
from graphopt.ir import Graph
from graphopt.ir.graph import outer_references
from graphopt.passes.base import Instrument, PassContext, Retractable

log = logging.getLogger("graphopt.subgraphs")

Runner = Callable[[Graph, PassContext], bool]


def optimize_bodies(
    graph: Graph, ctx: PassContext, run: Runner, instruments: Sequence[Instrument] = ()
) -> bool:
    """Run `run` (a pipeline) over every body of every node of `graph` that has one; True
    when some body changed. `instruments` are those of `ctx` that also watch the bodies."""
    owners = graph.nodes_with_bodies()
    if not owners:
        return False
    facts = shape_facts(graph, ctx)
    changed = False
    for node in owners:
        bodies = []
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                bodies.append((attr.name, attr.g))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                bodies.extend((f"{attr.name}[{i}]", g) for i, g in enumerate(attr.graphs))
        node_changed = False
        for label, body in bodies:
            where = f"{node.op_type} {node.name!r} {label}"
            node_changed |= _optimize_body(graph, body, where, facts, ctx, run, instruments)
        if node_changed:
            graph.refresh_subgraph_reads(node)
            changed = True
    return changed


def _optimize_body(
    graph: Graph,
    body: onnx.GraphProto,
    where: str,
    facts: ShapeFacts,
    ctx: PassContext,
    run: Runner,
    instruments: Sequence[Instrument],
) -> bool:
    outer = sorted(outer_references(body))
    declared = []
    for name in outer:
        dtype = facts.dtype(name)
        if dtype is None:
            log.info(
                "%s kept as it is: outer value %r has no known tensor type (a sequence, an "
                "optional, or a type shape inference does not know)",
                where,
                name,
            )
            return False
        shape = facts.shape(name)
        dims = None if shape is None else [d if isinstance(d, int | str) else None for d in shape]
        declared.append(onnx.helper.make_tensor_value_info(name, dtype, dims))
    untyped = [i.name for i in body.input if i.type.WhichOneof("value") is None]
    if untyped:
        log.info("%s kept as it is: input %r has no type", where, untyped[0])
        return False
    model = onnx.ModelProto()
    model.ir_version = graph.model.ir_version
    model.opset_import.extend(graph.model.opset_import)
    model.functions.extend(graph.model.functions)
    model.graph.CopyFrom(body)
    model.graph.input.extend(declared)
    inner = Graph(model)
    inner.reserve_names(graph.names_in_use())
    inner_ctx = PassContext(
        opt_level=ctx.opt_level,
        disabled=set(ctx.disabled),
        options={**ctx.options, "upgrade_opset": False},  # the body's opset is its model's
        instruments=list(instruments),
        record_explanations=ctx.record_explanations,
        in_body=True,
    )
    marks = [(i, i.mark()) for i in instruments if isinstance(i, Retractable)]
    changed = run(inner, inner_ctx)
    if not changed:
        ctx.explain.extend(inner_ctx.explain)  # the refusals
        return False
    result = inner.commit(reindex=False)
    problem = _interface_change(body, result, outer, graph.model)
    if problem:
        # what the passes did there is undone: --explain says so instead, --stats forgets it
        for instrument, mark in marks:
            instrument.retract(mark)
        log.warning("%s kept as it was: optimizing it %s", where, problem)
        ctx.note("optimize-bodies", where, "refused", f"kept as it was: optimizing it {problem}")
        return False
    ctx.explain.extend(inner_ctx.explain)
    del result.graph.input[len(body.input) :]
    body.CopyFrom(result.graph)
    have = {o.domain for o in graph.model.opset_import}
    for opset in result.opset_import:
        if opset.domain not in have:
            graph.model.opset_import.append(opset)
            graph.opset[opset.domain] = opset.version
    graph.reserve_names(inner.names_in_use())
    return True


def _interface_change(
    body: onnx.GraphProto, result: onnx.ModelProto, outer: list[str], parent: onnx.ModelProto
) -> str:
    """How the optimized body's interface differs from `body`'s ("" when it does not)."""
    g = result.graph
    want_inputs = [i.name for i in body.input] + outer
    if [i.name for i in g.input] != want_inputs:
        return "changed its inputs"
    for before, after in zip(body.input, g.input, strict=False):
        if before.type != after.type:
            return f"changed the type of input {before.name!r}"
    if [o.name for o in g.output] != [o.name for o in body.output]:
        return "changed its outputs"
    for before, after in zip(body.output, g.output, strict=True):
        if before.type != after.type:
            return f"changed the type of output {before.name!r}"
    versions = {o.domain or "": o.version for o in parent.opset_import}
    for opset in result.opset_import:
        known = versions.get(opset.domain or "")
        if known is not None and known != opset.version:
            return f"changed the opset of domain {opset.domain or 'ai.onnx'!r}"
    # every name the body reads is now defined in it or is one of the declared inputs
    undefined = outer_references(g)
    if undefined:
        return f"made it read {sorted(undefined)[0]!r}, which no scope defines"
    return ""
