"""Common-subexpression elimination: identical nodes and identical constants are merged.

Two nodes are identical when they have the same domain, op type, overload, attributes and
inputs (in order); the later one's outputs are replaced by the earlier one's. Two
initializers are identical when dtype, dims and bytes match; equal ones are replaced by the
one read first in node order (see `_merge_twins`), never by their order in the initializer
list, which carries no meaning in ONNX: the result is the same whatever that order. Nodes
are visited in topological order, so merging cascades down the graph in one run. A merge is
value-preserving, so the quantization annotation of the tensor merged away names its twin
(`Graph.replace_all_uses` with `same_values`), as does an annotation's scale or zero point.

What it does not do: merge random ops or calls of model-local functions that hold one (or
an op of an unknown custom domain), nodes carrying subgraphs, ops of unknown custom domains
(their determinism is unknown), initializers that are graph inputs (callers may override
them) or segments of a larger tensor, or commutative variants (`a+b` vs `b+a`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import onnx
from onnx import numpy_helper

from graphopt.analysis.fold_kernels import NONDETERMINISTIC
from graphopt.ir import Graph
from graphopt.ir.graph import content_key
from graphopt.ir.nodes import nested_bodies, subgraphs
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.noop import can_bypass, shadowed

log = logging.getLogger("graphopt.passes.cse")

MERGEABLE_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})
# Dropout and onnxruntime's contrib dropouts draw a mask in training mode: two are two draws
RANDOM_IN_TRAINING = frozenset({"Dropout", "BiasDropout", "BitmaskDropout", "BitmaskBiasDropout"})


def _tensor_bytes(t: onnx.TensorProto) -> bytes:
    if t.HasField("raw_data"):
        return t.raw_data
    if t.data_type == onnx.TensorProto.STRING:
        # each element length first: numpy's tobytes() of a string tensor is the addresses of
        # its objects, which a freed tensor's next one reuses (unequal strings compared equal)
        return b"".join(len(s).to_bytes(8, "little") + s for s in t.string_data)
    return numpy_helper.to_array(t).tobytes()


def _fingerprint(
    keys: dict[str, tuple[onnx.TensorProto, object]], name: str, t: onnx.TensorProto
) -> tuple[object, bytes | None]:
    """The tensor's content key (`graphopt.ir.graph.content_key`), and its bytes (read once:
    every read of `raw_data` copies them; b"" when not read), or None when the key holds all
    of them: small tensors (most biases, scales and scalars) are their own key, so equal keys
    are equal tensors and no bytes are compared or kept.

    A larger tensor's key is remembered in `keys` (the graph's `content_keys`: valid while the
    graph holds the same proto and nothing wrote it in place unannounced), so a later run reads
    no bytes for it unless its key is shared; a shared key is always confirmed on the bytes, so
    a key remembered wrongly can only miss a merge, never make one."""
    if t.HasField("raw_data"):
        entry = keys.get(name)
        if entry is not None and entry[0] is t:
            return entry[1], b""
        data = t.raw_data
        key = content_key(data)
        if key is data:
            return data, None
        keys[name] = (t, key)
        return key, data
    return (-1, _tensor_bytes(t)), None


def _same_bytes(graph: Graph, candidates: list[tuple[bytes, str]], data: bytes) -> str | None:
    """The first candidate (bytes, or b"" when not read yet, and name) holding `data`."""
    for i, (kept_bytes, kept_name) in enumerate(candidates):
        if not kept_bytes:
            kept_bytes = _tensor_bytes(graph.initializers[kept_name])
            candidates[i] = (kept_bytes, kept_name)
        if kept_bytes == data:
            return kept_name
    return None


def _node_key(
    graph: Graph, name: str, node: onnx.NodeProto, random_calls: frozenset[tuple[str, str]]
) -> tuple | None:
    """Domain, op, overload, inputs and output count (attributes are compared only on a
    collision), or None for a node that must not be merged: random ops, calls of random local
    functions (`random_calls`), unknown domains, subgraphs (each field is read once: every
    read builds a wrapper). The overload (IR 10) picks which local function of that domain
    and name a call runs: calls of two overloads are calls of two functions."""
    domain, op = node.domain, node.op_type
    if domain not in MERGEABLE_DOMAINS or op in NONDETERMINISTIC or op in RANDOM_IN_TRAINING:
        return None
    if random_calls and (domain, op) in random_calls:
        return None
    if graph.has_subgraphs(node):
        return None
    return (domain, op, node.overload, graph.inputs_of(name), len(graph.outputs_of(name)))


def _random_functions(model: onnx.ModelProto) -> frozenset[tuple[str, str]]:
    """(domain, name) of the model-local functions a call of which may be random: a random op
    or Dropout in the body (its If/Loop/Scan bodies included), an op of a domain CSE does not
    merge (`MERGEABLE_DOMAINS`: its determinism is unknown) that is no local function, or a
    call of such a function. Two calls of one with the same inputs may be two draws, not one."""
    if not model.functions:
        return frozenset()
    local = {(f.domain, f.name) for f in model.functions}
    calls: dict[tuple[str, str], set[tuple[str, str]]] = {}
    random: set[tuple[str, str]] = set()
    for f in model.functions:
        key = (f.domain, f.name)
        nodes = list(f.node)
        for body in (b for n in f.node for s in subgraphs(n) for b in (s, *nested_bodies(s))):
            nodes.extend(body.node)
        calls[key] = {(n.domain, n.op_type) for n in nodes}
        if any(
            n.op_type in NONDETERMINISTIC
            or n.op_type in RANDOM_IN_TRAINING
            or (n.domain not in MERGEABLE_DOMAINS and (n.domain, n.op_type) not in local)
            for n in nodes
        ):
            random.add(key)
    grew = True
    while grew:
        grew = False
        for key, called in calls.items():
            if key not in random and called & random:
                random.add(key)
                grew = True
    return frozenset(random)


def _attributes_key(node: onnx.NodeProto) -> tuple:
    return tuple(sorted((a.name, a.SerializeToString()) for a in node.attribute))


@register_pass
@dataclass
class EliminateCommonSubexpressions(Pass):
    """Merge identical constants, then identical nodes.

    c₁ ≡ c₂ (dtype, dims, bytes), c₁ read first            ⇒  uses of c₂ read c₁
    n₁ = op(x…; attrs), n₂ = op(x…; attrs), n₁ before n₂    ⇒  uses of n₂'s outputs read n₁'s
    """

    name = "eliminate-common-subexpressions"
    opt_level = 1
    merge_initializers: bool = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        constants = self._merge_initializers(graph, ctx) if self.merge_initializers else 0
        nodes = self._merge_nodes(graph, ctx)
        return PassResult(constants + nodes > 0, {"initializers": constants, "nodes": nodes})

    def _merge_initializers(self, graph: Graph, ctx: PassContext) -> int:
        inputs = set(graph.graph_inputs)
        external = onnx.TensorProto.EXTERNAL
        by_header: dict[tuple, list[tuple[str, onnx.TensorProto]]] = {}
        for name, t in graph.initializers.items():
            # a segment (`segment` set) is one part of a larger tensor: equal bytes at other
            # offsets are not the same tensor, and its value is unknown
            if name in inputs or t.data_location == external or t.HasField("segment"):
                continue
            # tuple(t.dims[:]): the slice is built in C, ~45% cheaper than tuple(t.dims)
            by_header.setdefault((t.data_type, tuple(t.dims[:])), []).append((name, t))
        keys = graph.content_keys
        # the tensors of each value held more than once, the first one seen first
        twins: dict[str, list[str]] = {}
        for group in by_header.values():
            if len(group) < 2:
                continue
            keep: dict[object, list[tuple[bytes, str]]] = {}
            for name, t in group:
                fp, data = _fingerprint(keys, name, t)
                candidates = keep.get(fp)
                if candidates is None:
                    # Bytes are kept only once a fingerprint is shared (memory stays flat).
                    keep[fp] = [(b"", name)]
                    continue
                if data is None:  # the fingerprint is the value: the first tensor is its twin
                    twin: str | None = candidates[0][1]
                else:
                    data = data or _tensor_bytes(t)  # b"": the key was remembered
                    twin = _same_bytes(graph, candidates, data)
                if twin is None:
                    candidates.append((data or b"", name))
                    continue
                twins.setdefault(twin, [twin]).append(name)
        return self._merge_twins(graph, ctx, list(twins.values())) if twins else 0

    def _merge_twins(self, graph: Graph, ctx: PassContext, values: list[list[str]]) -> int:
        """Merge each set of equal initializers into one of them, chosen by a rule that does
        not read the initializer list's order (which carries no meaning in ONNX): a graph
        output (it keeps its name), else the one whose first reader comes first in node
        order, ties (no reader, or one reader of both) by name."""
        position = {name: i for i, name in enumerate(graph.nodes)}
        never = len(position)
        consumers, is_output = graph.consumers, graph.is_graph_output

        def rank(name: str) -> tuple[bool, int, str]:
            readers = consumers.get(name)
            first = min(map(position.__getitem__, readers)) if readers else never
            return (not is_output(name), first, name)

        merged = 0
        # `shadowed` looks for bodies among the readers of both names, whose lists grow as
        # twins merge (layout_cdla: ~800 merges, mostly into a few shared scalars); without
        # If/Loop/Scan nodes there is no body to shadow anything
        bodies = bool(graph.nodes_with_bodies())
        for names in values:
            twin, *rest = sorted(names, key=rank)
            for name in rest:
                if is_output(name) or (bodies and shadowed(graph, name, twin)):
                    continue  # an output keeps its own name (and a twin initializer is cheap)
                dropped = graph.replace_all_uses(name, twin, same_values=True)
                graph.remove_initializer(name)
                if dropped:
                    log.debug(dropped)
                ctx.note(self.name, name, "applied", f"same value as {twin!r}")
                merged += 1
        return merged

    def _merge_nodes(self, graph: Graph, ctx: PassContext) -> int:
        # The node order is topological after every commit, so merges cascade in one run;
        # where it is not (nodes added since), a later run of the pass finds the rest.
        seen: dict[tuple, list[tuple[onnx.NodeProto, tuple]]] = {}
        merged = 0
        live = graph.nodes
        random_calls = _random_functions(graph.model)
        for name, node in list(live.items()):
            if name not in live:
                continue  # merged away in this run
            key = _node_key(graph, name, node, random_calls)
            if key is None:
                continue
            bucket = seen.get(key)
            if bucket is None:
                seen[key] = [(node, ())]
                continue
            attrs = _attributes_key(node)
            first = None
            for i, (other, other_attrs) in enumerate(bucket):
                if other_attrs == () and other.attribute:
                    other_attrs = _attributes_key(other)
                    bucket[i] = (other, other_attrs)
                if other_attrs == attrs:
                    first = other
                    break
            if first is None:
                bucket.append((node, attrs))
                continue
            pairs = [(o, f) for o, f in zip(node.output, first.output, strict=True) if o]
            if not all(f for _, f in pairs):
                continue  # `first` omits an optional output that `node` produces
            if not all(can_bypass(graph, f, o) for o, f in pairs):
                ctx.note(self.name, node.name, "refused", "graph output must keep its name")
                continue
            dropped = [graph.replace_all_uses(out, kept, same_values=True) for out, kept in pairs]
            graph.remove_node(node)
            for line in filter(None, dropped):
                log.debug(line)
            ctx.note(self.name, node.name, "applied", f"same as {first.name!r}")
            merged += 1
        return merged
