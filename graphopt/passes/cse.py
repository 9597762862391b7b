"""Common-subexpression elimination: identical nodes and identical constants are merged.

Two nodes are identical when they have the same domain, op type, attributes and inputs (in
order); the later one's outputs are replaced by the earlier one's. Two initializers are
identical when dtype, dims and bytes match; the later one is replaced by the earlier one.
Nodes are visited in topological order, so merging cascades down the graph in one run.

What it does not do: merge random ops, nodes carrying subgraphs, ops of unknown custom domains
(their determinism is unknown), initializers that are graph inputs (callers may override
them), or commutative variants (`a+b` vs `b+a`).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import numpy_helper

from graphopt.ir import Graph
from graphopt.passes._folding_ops import NONDETERMINISTIC
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.noop import can_bypass

MERGEABLE_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})
FINGERPRINT_BYTES = 64


def _tensor_bytes(t: onnx.TensorProto) -> bytes:
    if t.HasField("raw_data"):
        return t.raw_data
    return numpy_helper.to_array(t).tobytes()


def _fingerprint(t: onnx.TensorProto) -> tuple[tuple, bytes]:
    """A cheap key that differs for most distinct tensors of the same dtype and dims, and the
    tensor's bytes (read once: every read of `raw_data` copies them)."""
    if t.HasField("raw_data"):
        data = t.raw_data
        return (len(data), data[:FINGERPRINT_BYTES], data[-FINGERPRINT_BYTES:]), data
    data = _tensor_bytes(t)
    return (-1, data), data


def _external(t: onnx.TensorProto) -> bool:
    return t.data_location == onnx.TensorProto.EXTERNAL


def _node_key(node: onnx.NodeProto) -> tuple:
    """Domain, op, inputs and output count; attributes are compared only on a collision."""
    return (node.domain, node.op_type, tuple(node.input), len(node.output))


def _attributes_key(node: onnx.NodeProto) -> tuple:
    return tuple(sorted((a.name, a.SerializeToString()) for a in node.attribute))


def _mergeable(graph: Graph, node: onnx.NodeProto) -> bool:
    if node.domain not in MERGEABLE_DOMAINS or node.op_type in NONDETERMINISTIC:
        return False
    if node.op_type == "Dropout":
        return False  # random in training mode
    return not graph.has_subgraphs(node)


@register_pass
@dataclass
class EliminateCommonSubexpressions(Pass):
    """Merge identical constants, then identical nodes.

    c₁ ≡ c₂ (dtype, dims, bytes)                           ⇒  uses of c₂ read c₁
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
        by_header: dict[tuple, list[onnx.TensorProto]] = {}
        for name, t in graph.initializers.items():
            if name in inputs or _external(t):
                continue
            by_header.setdefault((t.data_type, tuple(t.dims)), []).append(t)
        merged = 0
        for group in by_header.values():
            if len(group) < 2:
                continue
            keep: dict[tuple, list[tuple[bytes, str]]] = {}
            for t in group:
                fp, data = _fingerprint(t)
                candidates = keep.setdefault(fp, [])
                twin = None
                for i, (kept_bytes, kept_name) in enumerate(candidates):
                    if not kept_bytes:
                        kept_bytes = _tensor_bytes(graph.initializers[kept_name])
                        candidates[i] = (kept_bytes, kept_name)
                    if kept_bytes == data:
                        twin = kept_name
                        break
                if twin is None:
                    # Bytes are kept only once a fingerprint is shared (memory stays flat).
                    candidates.append((data if candidates else b"", t.name))
                    continue
                if graph.is_graph_output(t.name):
                    continue  # an output keeps its own name (and a twin initializer is cheap)
                graph.replace_all_uses(t.name, twin)
                graph.remove_initializer(t.name)
                ctx.note(self.name, t.name, "applied", f"same value as {twin!r}")
                merged += 1
        return merged

    def _merge_nodes(self, graph: Graph, ctx: PassContext) -> int:
        # The node order is topological after every commit, so merges cascade in one run;
        # where it is not (nodes added since), a later run of the pass finds the rest.
        seen: dict[tuple, list[tuple[onnx.NodeProto, tuple]]] = {}
        merged = 0
        for node in list(graph.nodes.values()):
            if node.name not in graph.nodes or not _mergeable(graph, node):
                continue
            key = _node_key(node)
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
            for out, kept in pairs:
                graph.replace_all_uses(out, kept)
            graph.remove_node(node)
            ctx.note(self.name, node.name, "applied", f"same as {first.name!r}")
            merged += 1
        return merged
