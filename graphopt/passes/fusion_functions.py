"""Materialize the FuseOps groups as ONNX model-local functions (opt-in; in no built-in pipeline).

Each fusion group of at least `min_size` nodes (see `graphopt.analysis.fuse_ops`) becomes one
`FunctionProto` in domain `graphopt.fused` whose body is the group's nodes, plus one call node
in the graph. The model then shows the partition structurally (Netron draws one box per group)
and runtimes that inline local functions (onnxruntime) compute exactly what they did before.

What it does not do: change any computation, fuse kernels itself, or touch groups of opaque
nodes (control flow and custom-domain ops always form singleton groups) or dead groups (no
node outside reads their results: a function returning nothing; dead-code elimination's job).

A tensor inside a group whose value_info states dims that shape inference does not find stays
visible, as a function output: onnxruntime inlines a function under fresh names and keeps none
of its value_info, and its optimizer's fusions read shapes (khmer_seg, whose value_info states
(1, seq, 192) where inference finds no dims: 2 of its 5 SkipLayerNormalizations were lost at
ORT_ENABLE_ALL, outputs 1.4e-6 apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from graphopt.analysis.fuse_ops import MAX_GROUP_SIZE, FusionGroup, fusion_groups
from graphopt.analysis.shapes import ShapeFacts, inferred_light, light_model
from graphopt.ir import Graph
from graphopt.ir.values import declared_dims
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass

FUSED_DOMAIN = "graphopt.fused"
MIN_IR_VERSION_FOR_FUNCTIONS = 8


@register_pass
@dataclass
class MaterializeFusionGroups(Pass):
    """Replace every fusion group G with |G| ≥ min_size by a call of a local function.

    G = {n₁ … n_k} (topological), ins(G) = tensors its nodes read that no node of G writes,
    outs(G) = tensors G writes that a node outside G reads, that are graph outputs, or whose
    value_info states dims inference does not find (`_stated_only`):
        n₁ … n_k  ⇒  outs(G) = graphopt.fused.fused_<i>(ins(G)),
        fused_<i>(ins(G)) := { n₁ … n_k } returning outs(G).
    Tensor names outside the group are unchanged; the value_info of the tensors that move
    inside goes with them (the function's value_info); the IR version is raised to 8 when lower
    (model-local functions need it).
    """

    name = "materialize-fusion-groups"
    in_bodies = False  # adds model-local functions
    opt_level = 1  # opt-in by being in no built-in pipeline, not by its level
    min_size: int = 2
    max_group_size: int = MAX_GROUP_SIZE

    def __post_init__(self) -> None:
        # (failed only when the pass ran, after every pass before it)
        for option in ("min_size", "max_group_size"):
            if getattr(self, option) < 1:
                raise ValueError(f"{option} must be at least 1, got {getattr(self, option)}")
        if self.min_size > self.max_group_size:  # every group is capped below min_size
            raise ValueError(
                f"min_size ({self.min_size}) is more than max_group_size "
                f"({self.max_group_size}): no group could be materialized"
            )

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        groups = []
        for g in fusion_groups(graph, self.max_group_size, ctx):
            if len(g.nodes) < max(self.min_size, 2):
                continue
            if not _boundary(graph, g)[1]:  # dead: no function that returns nothing
                ctx.note(self.name, g.nodes[0], "refused", "the group's results are unused")
                continue
            groups.append(g)
        if not groups:
            return PassResult(False, {"functions": 0, "nodes": 0})
        model = graph.model
        taken = {(f.domain, f.name) for f in model.functions}
        infos: dict[str, onnx.ValueInfoProto] = {}
        for vi in graph.proto.value_info:
            infos.setdefault(vi.name, vi)  # the names of a function's value_info are distinct
        folded = 0
        stated = _stated_only(graph, groups, infos)
        for group in groups:
            fname = _fresh_function_name(group, graph, taken)
            function, call = _build(graph, group, fname, infos, stated)
            for n in group.nodes:
                graph.remove_node(n)
            graph.add_node(call)
            model.functions.append(function)
            taken.add((FUSED_DOMAIN, fname))
            folded += len(group.nodes)
            ctx.note(self.name, call.name, "applied", f"{len(group.nodes)} nodes")
        _import_domain(graph)
        return PassResult(True, {"functions": len(groups), "nodes": folded})


def _fresh_function_name(group: FusionGroup, graph: Graph, taken: set[tuple[str, str]]) -> str:
    head = graph.nodes[group.anchor or group.nodes[0]].op_type
    k = len(taken)
    while (FUSED_DOMAIN, f"fused_{head}_{k}") in taken:
        k += 1
    return f"fused_{head}_{k}"


def _stated_only(
    graph: Graph, groups: list[FusionGroup], infos: dict[str, onnx.ValueInfoProto]
) -> set[str]:
    """The tensors written in `groups` whose value_info states a dim (a size or a symbol) where
    shape inference without the value_info's shapes (and without data propagation: taken as
    the least onnxruntime's loader finds) finds no size and not the same symbol, or where it
    finds no rank or another (where inference gives up, `inferred_light`: all but the graph
    outputs, which are function outputs anyway).
    onnxruntime merges a stated dim into the graph's only where inference finds no size;
    inlined under fresh names, a function's tensors get the inferred dims alone."""
    candidates = {
        t
        for g in groups
        for name in g.nodes
        for t in graph.nodes[name].output
        if t in infos and any(d is not None for d in declared_dims(infos[t]) or ())
    }
    if not candidates:
        return set()
    inferred = inferred_light(light_model(graph, ShapeFacts()), data_prop=False).graph
    found = {vi.name: declared_dims(vi) for vi in (*inferred.value_info, *inferred.output)}
    out = set()
    for t in candidates:
        stated, dims = declared_dims(infos[t]), found.get(t)
        if (
            dims is None
            or stated is None
            or len(dims) != len(stated)
            or any(
                d is not None and not isinstance(e, int) and d != e
                for d, e in zip(stated, dims, strict=True)
            )
        ):
            out.add(t)
    return out


def _boundary(
    graph: Graph, group: FusionGroup, keep: set[str] | frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """The group's input tensors (first-use order) and output tensors (production order;
    those in `keep` are outputs too)."""
    members = set(group.nodes)
    produced: set[str] = set()
    inputs: dict[str, None] = {}
    outputs: list[str] = []
    graph_outputs = set(graph.graph_outputs)
    for name in group.nodes:
        node = graph.nodes[name]
        for t in graph.node_inputs(node):
            if t not in produced:
                inputs[t] = None
        for t in node.output:
            if not t:
                continue
            produced.add(t)
            readers = graph.consumers.get(t, {})
            if t in graph_outputs or t in keep or any(r not in members for r in readers):
                outputs.append(t)
    return list(inputs), outputs


def _build(
    graph: Graph,
    group: FusionGroup,
    fname: str,
    infos: dict[str, onnx.ValueInfoProto],
    stated: set[str],
) -> tuple[onnx.FunctionProto, onnx.NodeProto]:
    """The function of `group` and the node calling it; `infos`: the graph's value_info by
    name; `stated`: tensors that stay outputs of the function (`_stated_only`).
    The value_info of the tensors that move inside (written by the group, read by none
    outside) goes with them: commit prunes it from the graph, which no longer holds them, and
    onnx.inliner gives it back from the function's."""
    inputs, outputs = _boundary(graph, group, stated)
    body = []
    for name in group.nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(graph.nodes[name])
        if copy.domain == "ai.onnx":  # a function body resolves the default domain as "" only
            copy.domain = ""
        body.append(copy)
    function = onnx.helper.make_function(
        FUSED_DOMAIN,
        fname,
        inputs,
        outputs,
        body,
        opset_imports=_function_opsets(graph),
        doc_string=f"fusion group of {len(body)} nodes, pattern {group.pattern.name}",
    )
    boundary = set(inputs) | set(outputs)
    inner = [t for node in body for t in node.output if t and t not in boundary]
    function.value_info.extend(infos[t] for t in inner if t in infos)
    call = onnx.helper.make_node(
        fname, inputs, outputs, name=graph.unique_name(fname), domain=FUSED_DOMAIN
    )
    return function, call


def _function_opsets(graph: Graph) -> list[onnx.OperatorSetIdProto]:
    """The model's opset imports, the default domain named "" (a model may import it as
    "ai.onnx", which onnx.checker and onnxruntime accept in the graph, but in a function body
    they find no opset for the body's nodes of domain "")."""
    imports = [o for o in graph.model.opset_import if o.domain != "ai.onnx"]
    if "" in graph.opset and not any(o.domain == "" for o in imports):
        imports.insert(0, onnx.helper.make_opsetid("", graph.opset[""]))
    return imports


def _import_domain(graph: Graph) -> None:
    model = graph.model
    if not any(o.domain == FUSED_DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(FUSED_DOMAIN, 1))
    graph.opset[FUSED_DOMAIN] = 1
    if model.ir_version < MIN_IR_VERSION_FOR_FUNCTIONS:
        model.ir_version = MIN_IR_VERSION_FOR_FUNCTIONS
