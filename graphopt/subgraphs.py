"""Run a pipeline inside `If`/`Loop`/`Scan` bodies, each as a model of its own.

A body B of node n in graph G becomes the model M(B): B's nodes, initializers, inputs and
outputs, plus one graph input per name B reads from the scopes around it (typed from G's shape
facts, inferred where they can be over only the nodes those names depend on:
`_facts_for_bodies`), under G's model's IR version, opset imports and functions. B's own inputs keep their
element types but only the shapes that are certain (`_own_inputs`: no runtime holds a body's
inputs to what they declare); the optimized body gets back B's declarations. The pipeline
runs over M(B) (so over B's own bodies first, recursively) with every name of the scopes
around B reserved, and only the passes that may run in a body (`Pass.in_bodies`: no new graph
outputs, no layout guard, no model-level functions), its context told what passes ask of
the graphs around B (`ctx.lasting_facts`: whether they hold a BitCast, `noop.NAN_BITS_AROUND`;
that no body of G holds a Range, `constant_folding.NO_RANGE_IN_BODIES`). The result replaces
B only when its interface is B's:

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import onnx

from graphopt.analysis.shapes import Shape, ShapeFacts, shape_facts, share_shape_facts
from graphopt.analysis.usedef import computed_from, live_nodes, small_constant
from graphopt.ir import Graph
from graphopt.ir.graph import outer_references
from graphopt.ir.io_names import as_text
from graphopt.ir.nodes import is_default_domain
from graphopt.passes.base import Instrument, PassContext, Retractable
from graphopt.passes.constant_folding import (
    NO_RANGE_IN_BODIES,
    dims_in_dispute,
    range_free_bodies,
)
from graphopt.passes.noop import (
    NAN_BITS_AROUND,
    dims_inference_counts_apart,
    nan_bits_observable,
)

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
    facts, later = _facts_for_bodies(graph, ctx, owners)
    # (a body run as a model of its own sees nothing around it)
    told: dict[str, object] = {NAN_BITS_AROUND: nan_bits_observable(graph, ctx)}
    if not ctx.options.get("rule_files"):
        # no built-in pass makes a Range in a body; a user's rule may (inside a nested body,
        # after its owner's body was told): then every level walks its bodies again
        told[NO_RANGE_IN_BODIES] = range_free_bodies(graph, ctx)
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
            node_changed |= _optimize_body(
                graph, node, body, where, facts, ctx, run, instruments, later, told
            )
        if node_changed:
            graph.refresh_subgraph_reads(node)
            changed = True
    if later is not None:
        later.freeze()
    return changed


class _FactsOnDemand(ShapeFacts):
    """`shape_facts(graph)` of `graph` as it is when made, inferred when first read: over the
    graph `rebuild()` builds again as it was (`PassContext.rebuild`), else over a copy of it
    taken by `freeze()`, which its owner calls before it changes `graph` (not before: a deep
    body's recursion need not hold the copy). Its fields come on first access: until then it
    has none."""

    def __init__(self, graph: Graph, rebuild: Callable[[], Graph] | None) -> None:
        self.__dict__["_build"] = rebuild  # (no dataclass fields yet)
        if rebuild is None:
            self.__dict__["_graph"] = graph

    def freeze(self) -> None:
        """Copy the graph now, unless there is no need (or it was inferred already)."""
        graph = self.__dict__.pop("_graph", None)
        if graph is not None:
            copy = _skeleton(graph)
            self.__dict__["_build"] = lambda: Graph(copy)

    def __getattr__(self, name: str) -> Any:
        if "_build" not in self.__dict__ or name.startswith("__"):  # (copy's hooks: none)
            raise AttributeError(name)
        self.freeze()
        facts = shape_facts(self.__dict__.pop("_build")())
        self.__dict__.update(vars(facts))
        return getattr(self, name)


def _facts_for_bodies(
    graph: Graph, ctx: PassContext, owners: list[onnx.NodeProto]
) -> tuple[ShapeFacts, _FactsOnDemand | None]:
    """The shape facts the bodies of `owners` are typed from: `shape_facts(graph, ctx)`'s;
    and the facts left in `ctx` to `freeze()` before `graph` changes, if any.

    Where that would infer afresh (`ctx` holds no shape facts yet) and what the bodies read
    (the owners' inputs and the bodies' outer references) is computed by no node with a body
    and by at most half of the graph's nodes, only those nodes are inferred over: inference
    runs forward, so it gives those tensors the same facts. The whole graph's inference took
    in every body and theirs: a body d levels deep was inferred over d times (layout_cdla in
    31 nested Ifs: 31 inferences of the detector, 1.6 of its 1.9 s). `ctx` then gets the
    whole graph's facts as `shape_facts` would have left there, inferred over a copy of the
    graph as it is now (weights' bytes left out, as inference reads none) when a pass first
    reads them (a body's model is built again instead: `PassContext.rebuild`): the passes
    after the bodies meet the facts they met before."""
    if any(isinstance(v, ShapeFacts) for v in (*ctx.facts.values(), *ctx.lasting_facts.values())):
        return shape_facts(graph, ctx), None  # cached, or covered: as shape_facts decides
    read = {t for node in owners for t in graph.node_inputs(node)}
    upstream = live_nodes(graph, read)
    if len(upstream) > len(graph) // 2 or any(node.name in upstream for node in owners):
        return shape_facts(graph, ctx), None
    later = _FactsOnDemand(graph, ctx.rebuild)
    share_shape_facts(ctx, later)
    return shape_facts(Graph(_skeleton(graph, upstream, read))), later


def _skeleton(
    graph: Graph, nodes: set[str] | None = None, wanted: set[str] | None = None
) -> onnx.ModelProto:
    """`graph`'s model as it is now, for `shape_facts(Graph(...))`, which reads of it what it
    reads of `graph` itself (nodes in `graph`'s topological order, initializers in its order):
    the data of initializers that are not `small_constant` left out (inference reads none).
    With `nodes` (all that the tensors `wanted` depend on): only those nodes, the initializers
    they or `wanted` are, and the outputs and value_info of the tensors defined there."""
    model = model_header(graph.model)
    src, g = graph.proto, model.graph
    g.name = as_text(src.name)
    g.input.extend(src.input)
    order = graph.toposort()
    initializers = graph.initializers
    if nodes is not None:
        order = [node for node in order if node.name in nodes]
        read = {t for node in order for t in graph.node_inputs(node)} | (wanted or set())
        initializers = {name: t for name, t in initializers.items() if name in read}
        defined = {*graph.graph_inputs, *initializers}
        defined.update(t for node in order for t in graph.outputs_of(node.name))
    add = g.node.add
    for node in order:
        add().CopyFrom(node)  # (`extend` copies a node with deep bodies ~3x slower)
    for name, t in initializers.items():
        h = g.initializer.add()
        if small_constant(t):
            h.CopyFrom(t)
            continue
        h.name = name
        h.data_type = t.data_type
        h.dims.extend(t.dims)
        h.data_location = t.data_location
    if nodes is None:
        g.output.extend(src.output)
        g.value_info.extend(src.value_info)
    else:
        g.output.extend(o for o in src.output if o.name in defined)
        g.value_info.extend(vi for vi in src.value_info if vi.name in defined)
    return model


def _optimize_body(
    graph: Graph,
    node: onnx.NodeProto,
    body: onnx.GraphProto,
    where: str,
    facts: ShapeFacts,
    ctx: PassContext,
    run: Runner,
    instruments: Sequence[Instrument],
    later: _FactsOnDemand | None = None,
    told: Mapping[str, object] | None = None,
) -> bool:
    """Run `run` over `body` of `node` as the model M(B) and put the result in its place when
    its interface is the body's; True when it did. `later`: frozen before `graph` changes.
    `told`: what the body's context learns of the graphs around it (`ctx.lasting_facts`)."""
    outer = sorted(outer_references(body))
    disputed = dims_in_dispute(graph, ctx)
    apart: frozenset[str] | None = None  # (read only once a dim is declared)
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
        if dims is not None and apart is None and any(isinstance(d, int) for d in dims):
            apart = _counted_apart(graph, ctx, facts, later)
        # a Range onnxruntime versions count apart; dims the checker's inference counts
        # otherwise (a ceil_mode pool's): the body is told nothing of them
        if dims is not None and (name in disputed or (apart is not None and name in apart)):
            dims = [None] * len(dims)
        declared.append(onnx.helper.make_tensor_value_info(name, dtype, dims))
    untyped = [i.name for i in body.input if i.type.WhichOneof("value") is None]
    if untyped:
        log.info("%s kept as it is: input %r has no type", where, untyped[0])
        return False
    own, own_facts = _own_inputs(graph, node, body, facts, declared)
    inputs = own + declared
    inner = Graph(_model_of(graph, body, inputs))
    inner.reserve_names(graph.names_in_use())
    inner_ctx = PassContext(
        opt_level=ctx.opt_level,
        disabled=set(ctx.disabled),
        options={**ctx.options, "upgrade_opset": False},  # the body's opset is its model's
        instruments=list(instruments),
        record_explanations=ctx.record_explanations,
        in_body=True,
        # M(B) as the run gets it: `body` and `graph` change only once the run is over
        rebuild=lambda: Graph(_model_of(graph, body, inputs)),
    )
    inner_ctx.lasting_facts.update(told or {})
    if own_facts is not None:  # inferred over this very model: not again
        share_shape_facts(inner_ctx, own_facts)
    marks = [(i, i.mark()) for i in instruments if isinstance(i, Retractable)]
    changed = run(inner, inner_ctx)
    if not changed:
        ctx.explain.extend(inner_ctx.explain)  # the refusals
        return False
    result = inner.commit(reindex=False)
    problem = _interface_change(own, body, result, outer, graph.model)
    if problem:
        # what the passes did there is undone: --explain says so instead, --stats forgets it
        for instrument, mark in marks:
            instrument.retract(mark)
        log.warning("%s kept as it was: optimizing it %s", where, problem)
        ctx.note("optimize-bodies", where, "refused", f"kept as it was: optimizing it {problem}")
        return False
    ctx.explain.extend(inner_ctx.explain)
    if later is not None:
        later.freeze()
    del result.graph.input[:]
    result.graph.input.extend(body.input)  # as the body declared them
    body.CopyFrom(result.graph)
    have = {o.domain for o in graph.model.opset_import}
    for opset in result.opset_import:
        if opset.domain not in have:
            graph.model.opset_import.append(opset)
            graph.opset[opset.domain] = opset.version
    graph.reserve_names(inner.names_in_use())
    return True


def _counted_apart(
    graph: Graph, ctx: PassContext, facts: ShapeFacts, later: _FactsOnDemand | None
) -> frozenset[str]:
    """`dims_inference_counts_apart(graph, ctx)` as far as the tensors `facts` knows go.

    Where `facts` were inferred over only the nodes the bodies' outer reads depend on (`later`
    holds the whole graph's, to infer when a pass asks), from their own first inference: it
    ran over those nodes as the whole graph's does (forward), so it found the same places
    there, and a tensor computed from a place elsewhere is no outer read. Asking `ctx` made
    `later` infer the whole graph at once (layout_cdla with an If reading its input: 2
    inferences, 618 nodes, where there was 1 of 0 nodes before 33237ba). Those facts are in
    hand, so their places are read as they are: `dims_inference_counts_apart` first asks
    `holds_suspect` only to spare an inference, and a graph holding no suspect has none (the
    walk into every body, at every level of layout_cdla nested 31 Ifs deep, cost 33 ms)."""
    if later is None:
        return dims_inference_counts_apart(graph, ctx)
    return frozenset(computed_from(graph, facts.apart_roots))


def _model_of(
    graph: Graph, body: onnx.GraphProto, inputs: list[onnx.ValueInfoProto]
) -> onnx.ModelProto:
    """M(B): `body` with `inputs`, under `graph`'s model's IR version, opsets and functions."""
    model = model_header(graph.model)
    model.graph.CopyFrom(body)
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def model_header(model: onnx.ModelProto) -> onnx.ModelProto:
    """A model with `model`'s IR version, opset imports and model-local functions and an empty
    graph: what a graph (a body, a part of the graph) needs around it to be a model of its own
    that checks and runs as it does inside `model`."""
    header = onnx.ModelProto()
    header.ir_version = model.ir_version
    header.opset_import.extend(model.opset_import)
    header.functions.extend(model.functions)
    return header


def _own_inputs(
    graph: Graph,
    node: onnx.NodeProto,
    body: onnx.GraphProto,
    facts: ShapeFacts,
    declared: list[onnx.ValueInfoProto],
) -> tuple[list[onnx.ValueInfoProto], ShapeFacts | None]:
    """`body`'s own inputs as M(B) declares them (`declared`: the outer values it reads): the
    body's element types, with a shape only where it is certain, since no runtime holds a
    body's inputs to their declared shapes (a loop-carried value a Concat grows keeps
    declaring the first iteration's, and a Scan's state or slice declared [2] is fed what the
    Scan's inputs have); and, where finding them inferred the shapes of M(B) with its inputs
    declared so, those shape facts (None otherwise):

        Loop:  iteration number, condition: as declared (onnxruntime feeds that rank)
               v_k: the known dims of its initial value's shape that the body keeps
               (`_kept_by_every_iteration`), else none
        Scan:  state s_j: the initial value's (every iteration's state has one shape);
               scan input x_j: the Scan's input's without its scan axis (opset 9 on)
        else:  none
    """
    default = is_default_domain(node)
    loop = default and node.op_type == "Loop"
    scan = default and node.op_type == "Scan" and graph.opset_version("") >= 9
    states = len(body.input) - int(graph.attr(node, "num_scan_inputs", 0) or 0)
    axes = list(graph.attr(node, "scan_input_axes", None) or [])
    shapes: dict[int, Shape] = {}
    for k, vi in enumerate(body.input):
        source = node.input[k] if k < len(node.input) else ""
        if not vi.type.HasField("tensor_type") or not source or not (loop or scan):
            continue
        shape = facts.shape(source)
        if shape is None:
            continue
        if (loop and 2 <= k <= len(body.output)) or (scan and k < states):
            shapes[k] = shape
        elif scan:
            axis = axes[k - states] if k - states < len(axes) else 0
            axis += len(shape) if axis < 0 else 0
            if 0 <= axis < len(shape):
                shapes[k] = shape[:axis] + shape[axis + 1 :]
    facts_of_body = None
    if loop:
        shapes, facts_of_body = _kept_by_every_iteration(graph, body, shapes, declared)
    return _typed(body, shapes, kept=2 if loop else 0), facts_of_body


def _typed(body: onnx.GraphProto, shapes: dict[int, Shape], kept: int) -> list[onnx.ValueInfoProto]:
    """`body`'s inputs with their element types and `shapes` (none where it has none); the first
    `kept` and those that are not tensors as declared."""
    own = []
    for k, vi in enumerate(body.input):
        if k < kept or not vi.type.HasField("tensor_type"):
            own.append(vi)
            continue
        shape = shapes.get(k)
        dims = None if shape is None else [d if isinstance(d, int | str) else None for d in shape]
        own.append(onnx.helper.make_tensor_value_info(vi.name, vi.type.tensor_type.elem_type, dims))
    return own


def _kept_by_every_iteration(
    graph: Graph,
    body: onnx.GraphProto,
    initial: dict[int, Shape],
    declared: list[onnx.ValueInfoProto],
) -> tuple[dict[int, Shape], ShapeFacts | None]:
    """Of `initial` (Loop body input k: its initial value's shape), those every iteration
    keeps, by induction: with the inputs typed so, inference gives body output k - 1 the same
    dims again (rank, and each dim known there: its value or its symbol). Where one is not
    kept, the others are inferred again without it. A loop-invariant value (output k - 1 is
    input k itself) is kept at once. Also the facts of the last inference when it was over
    the inputs typed as returned (M(B) as `_optimize_body` builds it), else None."""
    assumed = dict(initial)
    while assumed:
        model = _model_of(graph, body, _typed(body, assumed, kept=2) + declared)
        inferred = shape_facts(model)
        kept = {
            k: shape
            for k, shape in assumed.items()
            if _same_known_dims(shape, inferred.shape(body.output[k - 1].name))
        }
        if len(kept) == len(assumed):
            return assumed, inferred
        assumed = kept
    return assumed, None


def _same_known_dims(before: Shape, after: Shape | None) -> bool:
    return (
        after is not None
        and len(after) == len(before)
        and all(d is None or d == e for d, e in zip(before, after, strict=True))
    )


def _interface_change(
    own: list[onnx.ValueInfoProto],
    body: onnx.GraphProto,
    result: onnx.ModelProto,
    outer: list[str],
    parent: onnx.ModelProto,
) -> str:
    """How the optimized body's interface differs from `body`'s, whose inputs M(B) declared
    as `own` ("" when it does not)."""
    g = result.graph
    want_inputs = [i.name for i in body.input] + outer
    if [i.name for i in g.input] != want_inputs:
        return "changed its inputs"
    for before, after in zip(own, g.input, strict=False):
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
