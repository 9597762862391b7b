"""TVM's FuseOps partition of an ONNX graph into fusion groups.

This follows `src/relay/transforms/fuse_ops.cc` and `src/relay/analysis/graph_partitioner.cc`,
kept in one file: build the indexed forward graph, build the post-dominator tree (with the
combined edge pattern from each node to its immediate post-dominator), run three phases over the
nodes in topological order, then read the groups off a union-find.

Indexed graph. A vertex per ONNX node, with its `OpKind`; an edge u → v per tensor of u that v
reads, whose pattern is kind(v), refined to ELEMWISE when v is BROADCAST and the tensor has the
same (known) shape as v's output (so Conv → Add(bias) is an elementwise edge but x[1,C,1,1] →
Mul(y[1,C,H,W]) is not). Nodes writing a graph output are `extern_ref`: they hang under the
exit. ONNX has no tuple values; Relay's `concatenate(Tuple(a, b))` is mirrored by a virtual
TUPLE vertex in front of every Concat, so the three phases run as in TVM:

- phase 1: an OUT_EWISE_FUSABLE node (Conv, Gemm, MatMul, pooling) fuses with its immediate
  post-dominator d when the combined pattern to d is ELEMWISE and every node on every path
  between them is ≤ BROADCAST; ELEMWISE/BROADCAST nodes fuse into d when every path is
  ≤ INJECTIVE (the sink may be anything fusable);
- phase 2: INJECTIVE nodes (and the virtual tuples) fuse into d when every path is ≤ INJECTIVE;
- phase 3: ≤ INJECTIVE nodes whose post-dominator is a virtual tuple fuse into the Concat's
  group when that group is not anchored by a complex op (injective into a multi-input
  injective consumer).

A fusion commits every node on every path from the node to d (CommitFuse), merging their groups
(union-find); a group remembers its anchor (the one OUT_EWISE_FUSABLE op it may hold) and the
combined pattern. A fusion that would make a group larger than `max_group_size` real nodes is
refused; unlike TVM, which estimates the size from per-node counts, the size here is exact.

Decisions for ONNX:
- `Constant` nodes (and every node `node_kind` calls OPAQUE: control flow, NMS, custom domains,
  a training-mode BatchNormalization) are opaque singleton groups; nothing fuses into or
  through them, so every node still lies in exactly one group.
- Dead nodes (no graph output depends on them) are singleton groups and no boundary: TVM
  never sees dead code, so the partition of the live nodes is the one TVM would make (a dead
  Relu reading a Conv's output does not keep the Conv from its epilogue). The tree it uses is
  the live graph's; `post_dominator_tree`, which keeps dead nodes, is not changed.
- A Dropout whose training_mode input is a constant false is the identity (ONNX), what TVM's
  frontend makes of it: ELEMWISE, not the OPAQUE `node_kind` gives any Dropout with that input.
- A Tile or Unsqueeze whose repeats or axes are not constants is INJECTIVE, TVM's kind for
  dyn.tile and dyn.expand_dims (the op kinds call both BROADCAST, TVM's kind for constant ones):
  such a node does not fuse into a reduction after it.
- TVM's limit on a fused function's argument count (a CUDA launch limit) is not applied.

What it does not do: rewrite the graph (see `graphopt.passes.fusion_functions`), or look into
subgraph bodies.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from numbers import Integral
from typing import TYPE_CHECKING

import onnx

from graphopt.analysis.dominators import (
    ModelOrGraph,
    as_graph,
    checked_order,
    immediate_dominators,
    inference_dropout,
)
from graphopt.analysis.op_kinds import OpKind, node_kind
from graphopt.analysis.shapes import ShapeFacts, shape_facts
from graphopt.errors import GraphoptError, OptionError
from graphopt.ir import Graph

if TYPE_CHECKING:  # (analysis does not import the pass layer at run time)
    from graphopt.passes.base import PassContext

MAX_GROUP_SIZE = 256  # TVM's kMaxFusedOps
TUPLE_CONSUMERS = frozenset({"Concat"})  # ops Relay feeds through a Tuple


# ---------------------------------------------------------------------------- indexed graph


@dataclass
class _Vertex:
    index: int
    name: str  # ONNX node name; "" for a virtual tuple
    kind: OpKind
    extern_ref: bool = False
    outputs: list[tuple[int, OpKind]] = field(default_factory=list)  # (consumer, edge pattern)
    dead: bool = False  # no graph output depends on it (see `_live_nodes`)
    position: int = 0  # the node's place in the file's (topological) order; a tuple's Concat's


def _combine(a: OpKind, b: OpKind) -> OpKind:
    return a if a > b else b


def _live_nodes(graph: Graph, order: list[onnx.NodeProto]) -> set[str]:
    """The nodes some graph output depends on (`order`: the nodes, topologically); the others
    are dead code, which TVM never sees (a Relay function holds what its result reads)."""
    live: set[str] = set()
    wanted = set(graph.graph_outputs)
    for node in reversed(order):
        if any(out in wanted for out in node.output):
            live.add(node.name)
            wanted.update(graph.node_inputs(node))
    return live


def _post_dfs_order(graph: Graph, order: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """The nodes in TVM's post-DFS order: depth first from the graph outputs' writers (in the
    graph's output order), each node after the writers of what it reads (its inputs in order,
    then its bodies' outer reads), which is how TVM's IndexedForwardGraph visits a Relay
    function's body. The phases fuse in this order, and where two nodes compete for one
    post-dominator (two Convs into one Add; the size cap) the first wins: in the file's order,
    listing the same graph's nodes in another order gave other groups. The nodes no graph
    output depends on follow, depth first from each in `order` (`order`: topological)."""
    producer, nodes = graph.producer, graph.nodes
    seen: set[str] = set()
    out: list[onnx.NodeProto] = []
    roots = [producer[t] for t in graph.graph_outputs if t in producer]
    roots.extend(n.name for n in order)
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(graph.node_inputs(nodes[root])))]
        while stack:
            name, reads = stack[-1]
            for tensor in reads:
                p = producer.get(tensor)
                if p is not None and p not in seen:
                    seen.add(p)
                    stack.append((p, iter(graph.node_inputs(nodes[p]))))
                    break
            else:
                stack.pop()
                out.append(nodes[name])
    return out


def _indexed_graph(graph: Graph, facts: ShapeFacts) -> list[_Vertex]:
    """Vertices in topological order (post-DFS order in TVM's words, `_post_dfs_order`)."""
    vertices: list[_Vertex] = []
    index: dict[str, int] = {}
    outputs = set(graph.graph_outputs)
    order = checked_order(graph)  # (a body reading its node's own output is a LoadError)
    live = _live_nodes(graph, order)
    position = {node.name: i for i, node in enumerate(order)}
    for node in _post_dfs_order(graph, order):
        kind = node_kind(node)
        if graph.has_subgraphs(node):
            kind = OpKind.OPAQUE
        elif kind == OpKind.OPAQUE and inference_dropout(graph, node):
            kind = OpKind.ELEMWISE
        elif kind == OpKind.BROADCAST and _computed_at_run_time(graph, node):
            kind = OpKind.INJECTIVE
        reads = graph.node_inputs(node)
        producers = [(t, index[graph.producer[t]]) for t in reads if t in graph.producer]
        target = len(vertices)
        dead = node.name not in live
        if node.op_type in TUPLE_CONSUMERS and kind == OpKind.INJECTIVE and producers:
            tup = _Vertex(len(vertices), "", OpKind.TUPLE, dead=dead, position=position[node.name])
            vertices.append(tup)
            for _, p in producers:
                vertices[p].outputs.append((tup.index, OpKind.INJECTIVE))
            producers = []
            target = tup.index + 1
            tup.outputs.append((target, kind))
        v = _Vertex(
            target,
            node.name,
            kind,
            any(o in outputs for o in node.output),
            dead=dead,
            position=position[node.name],
        )
        for tensor, p in producers:
            vertices[p].outputs.append((target, _edge_pattern(node, kind, tensor, facts)))
        vertices.append(v)
        index[node.name] = target
    return vertices


_DYNAMIC_BROADCASTS = frozenset({"Tile", "Unsqueeze"})  # TVM: dyn.tile, dyn.expand_dims


def _computed_at_run_time(graph: Graph, node: onnx.NodeProto) -> bool:
    """A Tile or Unsqueeze whose repeats or axes (its second input) are not a constant."""
    return (
        node.op_type in _DYNAMIC_BROADCASTS
        and len(node.input) > 1
        and bool(node.input[1])
        and not graph.is_constant(node.input[1])
    )


def _edge_pattern(node: onnx.NodeProto, kind: OpKind, tensor: str, facts: ShapeFacts) -> OpKind:
    """A BROADCAST consumer is ELEMWISE along an input of exactly its output's shape. A Clip
    is BROADCAST along its min and max inputs (when its input is not also one): TVM's frontend
    makes a Clip whose bounds are not constants maximum/minimum (broadcast) ops, so a MatMul
    that computes a bound is no elementwise producer of the Clip."""
    if (
        kind == OpKind.ELEMWISE
        and node.op_type == "Clip"
        and tensor in node.input[1:]
        and tensor != node.input[0]
    ):
        kind = OpKind.BROADCAST
    outs = node.output
    if kind != OpKind.BROADCAST or not outs:
        return kind
    a, b = facts.shape(tensor), facts.shape(outs[0])
    if a is not None and a == b and all(d is not None for d in a):
        return OpKind.ELEMWISE
    return kind


# ---------------------------------------------------------------------------- post-dominators


@dataclass
class _DomNode:
    parent: int | None  # vertex index of the immediate post-dominator; None = exit
    depth: int
    pattern: OpKind  # combined edge pattern on the paths to the parent


_KINDS = tuple(sorted(OpKind))  # the kinds, simplest first


def _post_dominators(vertices: list[_Vertex], live_only: bool = False) -> list[_DomNode]:
    """TVM's `DominatorTree::PostDom`: each vertex's immediate post-dominator d and the combined
    pattern of the ways there, without TVM's walk.

    TVM walks, in reverse topological order, from the consumers up the tree built so far to
    their least common ancestor d, combining the edges' patterns and the patterns of the tree
    vertices it passes. That walk is quadratic on a "comb" (n vertices, each read by the first
    and the last vertex of an n-vertex chain: each tooth's walk climbs the whole chain). Here d
    comes from `immediate_dominators` on the reversed graph (Lengauer–Tarjan, near-linear), and
    the pattern is what the walk combines: ELEMWISE, the consumers' edge patterns, and the
    patterns of the vertices on the tree paths from each consumer up to d (d excluded). That
    last part is read off `near[c][j]`, the depth of the closest vertex at or above c whose
    pattern is at least `_KINDS[j]`: the path c ⇝ d holds one iff that depth exceeds d's. Where
    only the exit post-dominates a vertex its pattern is OPAQUE (TVM's walk left a partial
    combination there, which nothing reads: no vertex fuses into the exit).

    `live_only`: the tree of the live graph, as TVM would see it: a live vertex's dead
    consumers are left out (a dead Relu reading a Conv's output does not make the exit the
    Conv's post-dominator), and dead vertices hang under the exit. Without it, the tree of
    the whole graph (`post_dominator_tree`'s)."""
    # The reversed graph, numbered: 0 the exit, i + 1 the vertex i; a vertex that writes a graph
    # output (or is dead, in the live tree) is followed by the exit alone, as in TVM's tree.
    consumers: list[list[tuple[int, OpKind]]] = []
    rev: list[list[int]] = [[] for _ in range(len(vertices) + 1)]
    for v in vertices:
        outs: list[tuple[int, OpKind]] = []
        if not (v.extern_ref or (live_only and v.dead)):
            outs = [(c, e) for c, e in v.outputs if not (live_only and vertices[c].dead)]
        consumers.append(outs)
        if not outs:
            rev[0].append(v.index + 1)
        for c, _ in outs:
            rev[c + 1].append(v.index + 1)
    idom = immediate_dominators(rev, 0)
    tree = [_DomNode(None, 1, OpKind.OPAQUE) for _ in vertices]
    top = (1,) * len(_KINDS)
    near: list[tuple[int, ...]] = [top] * len(vertices)
    for v in reversed(vertices):  # (a post-dominator comes after the vertex, topologically)
        d = idom[v.index + 1] - 1  # -1: the exit
        if d < 0:
            continue  # (parent None, depth 1, OPAQUE; near: every kind at depth 1)
        depth = tree[d].depth
        pattern = OpKind.ELEMWISE
        for c, edge in consumers[v.index]:
            if edge > pattern:
                pattern = edge
            reach = near[c]
            j = len(_KINDS) - 1
            while _KINDS[j] > pattern:
                if reach[j] > depth:  # a vertex of kind ≥ _KINDS[j] between c and d
                    pattern = _KINDS[j]
                    break
                j -= 1
        tree[v.index] = _DomNode(d, depth + 1, pattern)
        up = near[d]
        near[v.index] = tuple(
            depth + 1 if pattern >= kind else up[j] for j, kind in enumerate(_KINDS)
        )
    return tree


# ---------------------------------------------------------------------------- partition


@dataclass(eq=False)
class _Group:
    pattern: OpKind
    anchor: int | None = None
    num_nodes: int = 1
    parent: _Group | None = None

    def root(self) -> _Group:
        r = self
        while r.parent is not None:
            r = r.parent
        p = self
        while p is not r:  # path compression
            assert p.parent is not None
            p.parent, p = r, p.parent
        return r


Cond = Callable[[OpKind, bool], bool]


class _Partitioner:
    """TVM's `GraphPartitioner`: union-find groups, CheckPath, CommitFuse, three phases."""

    def __init__(self, vertices: list[_Vertex], max_group_size: int):
        self.vertices = vertices
        self.max_group_size = max_group_size
        self.groups = [
            _Group(
                v.kind,
                v.index if v.kind == OpKind.OUT_EWISE_FUSABLE else None,
                0 if v.kind == OpKind.TUPLE else 1,
            )
            for v in vertices
        ]

    def _paths(self, src: int, sink: int) -> Iterator[int]:
        """Vertices on paths from src's consumers up to (excluding) sink, each once (dead
        vertices are on no path: src is live, and no graph output depends on them). Lazily:
        a caller that has its answer stops the walk (see `check_path`)."""
        seen: set[int] = set()
        stack = [c for c, _ in self.vertices[src].outputs]
        while stack:
            v = stack.pop()
            if v in seen or v == sink or self.vertices[v].dead:
                continue
            seen.add(v)
            yield v
            stack.extend(c for c, _ in self.vertices[v].outputs)

    def check_path(self, src: int, sink: int, cond: Cond) -> bool:
        """TVM's CheckPath, and first whether src, sink and the paths between them fit in one
        group of the size cap: every caller fuses src into sink only when both hold, and both
        are free of side effects, so the order is the caller's choice. The cap first bounds
        the walk: it stops past `max_group_size` nodes, where a node whose post-dominator is
        far away (each of a chain's nodes also read by one Sum at its end) walked the rest of
        the graph three times, for a quadratic FuseOps (Sum of a 4,000-node chain: 31 s)."""
        if not cond(self.groups[sink].root().pattern, True):
            return False
        if not self.fits(src, sink):
            return False
        return all(cond(self.groups[v].root().pattern, False) for v in self._paths(src, sink))

    def commit_fuse(self, src: int, sink: int) -> None:
        target = self.groups[sink]
        for v in [src, *self._paths(src, sink)]:
            self._merge(self.groups[v], target)

    def _merge(self, child: _Group, parent: _Group) -> None:
        child, parent = child.root(), parent.root()
        if child is parent:
            return
        parent.num_nodes += child.num_nodes
        child.parent = parent
        if child.anchor is not None:
            if parent.anchor is not None or (
                child.pattern > OpKind.BROADCAST and parent.pattern > OpKind.BROADCAST
            ):
                raise GraphoptError(
                    "internal error in fuse_ops: two complex groups were merged "
                    f"(anchors {self.vertices[child.anchor].name!r} and "
                    f"{self.vertices[parent.anchor].name if parent.anchor is not None else '-'})"
                )
            parent.anchor = child.anchor
            parent.pattern = _combine(child.pattern, parent.pattern)

    def fits(self, child: int, sink: int) -> bool:
        """Whether the group of child, sink and the vertices on the paths between them holds
        at most `max_group_size` nodes. The count only grows along the walk, which stops once
        it is past the cap: every vertex on the walk but a virtual tuple is a node its group
        counts, so it stops after at most cap + 1 of them."""
        roots = {id(r): r for r in (self.groups[v].root() for v in [child, sink])}
        size = sum(r.num_nodes for r in roots.values())
        if size > self.max_group_size:
            return False
        for v in self._paths(child, sink):
            r = self.groups[v].root()
            if id(r) not in roots:
                roots[id(r)] = r
                size += r.num_nodes
                if size > self.max_group_size:
                    return False
        return True

    def run(self, tree: list[_DomNode], phase: int) -> None:
        for v, dom in zip(self.vertices, tree, strict=True):
            group = self.groups[v.index]
            if group.pattern == OpKind.OPAQUE or dom.parent is None or v.dead:
                continue
            d = dom.parent
            if phase == 2:
                self._phase_tuples(v.index, d, group)
                continue
            if group.root() is self.groups[d].root():
                continue  # already fused with its post-dominator
            if self.groups[d].pattern == OpKind.TUPLE:
                continue  # fields join a tuple only in phase 3
            if self._may_fuse(v.index, d, group.pattern, dom.pattern, phase):
                self.commit_fuse(v.index, d)  # (`check_path` checked the cap)

    def _may_fuse(self, v: int, d: int, kind: OpKind, to_d: OpKind, phase: int) -> bool:
        """Phases 1 and 2 (`phase` 0 and 1): may node `v`, whose own group has pattern `kind`,
        fuse into its post-dominator `d` (combined pattern `to_d` on the way)?"""
        if kind == OpKind.OUT_EWISE_FUSABLE:
            # Conv-like: only into an elementwise epilogue, every path ≤ BROADCAST.
            return (
                phase == 0
                and to_d == OpKind.ELEMWISE
                and self.check_path(v, d, lambda k, sink: k <= OpKind.BROADCAST)
            )
        if kind <= OpKind.BROADCAST:
            return (to_d <= OpKind.INJECTIVE or to_d == OpKind.COMM_REDUCE) and self.check_path(
                v, d, _elemwise_cond
            )
        if kind in (OpKind.INJECTIVE, OpKind.TUPLE):
            # Deferred to the second phase so that every Conv finishes fusing first.
            return phase == 1 and self.check_path(v, d, lambda k, sink: k <= OpKind.INJECTIVE)
        return False  # COMM_REDUCE: nothing fuses into a reduction's output in TVM either.

    def _phase_tuples(self, v: int, d: int, group: _Group) -> None:
        if group.pattern > OpKind.INJECTIVE:
            return
        parent_group = self.groups[d]
        root = parent_group.root()
        if root.pattern == OpKind.TUPLE:
            return
        if (
            parent_group.pattern == OpKind.TUPLE
            and root.pattern <= OpKind.INJECTIVE
            and self.check_path(v, d, lambda k, sink: k <= OpKind.INJECTIVE)
        ):
            self.commit_fuse(v, d)  # (`check_path` checked the cap)


def _elemwise_cond(kind: OpKind, is_sink: bool) -> bool:
    if not is_sink:
        return kind <= OpKind.INJECTIVE
    return kind <= OpKind.INJECTIVE or kind in (OpKind.COMM_REDUCE, OpKind.OUT_EWISE_FUSABLE)


# ---------------------------------------------------------------------------- public API


@dataclass
class FusionGroup:
    """One fusion group: node names in topological order, the group's combined pattern (the
    most complex kind among its nodes) and its anchor (the OUT_EWISE_FUSABLE node it is built
    around, if any)."""

    nodes: list[str]
    pattern: OpKind
    anchor: str | None


def fusion_groups(
    model: ModelOrGraph, max_group_size: int = MAX_GROUP_SIZE, ctx: PassContext | None = None
) -> list[FusionGroup]:
    """The FuseOps partition with each group's pattern and anchor (see `fuse_ops`)."""
    if isinstance(max_group_size, bool) or not isinstance(max_group_size, Integral):
        raise OptionError(f"max_group_size must be an integer, got {max_group_size!r}")
    if max_group_size < 1:
        raise OptionError(f"max_group_size must be at least 1, got {max_group_size}")
    graph = as_graph(model)
    vertices = _indexed_graph(graph, shape_facts(graph, ctx))
    tree = _post_dominators(vertices, live_only=True)
    part = _Partitioner(vertices, max_group_size)
    for phase in range(3):
        part.run(tree, phase)
    members: dict[int, list[int]] = {}
    root_of: dict[int, int] = {}
    roots: dict[int, _Group] = {}
    for v in vertices:
        if not v.name:
            continue  # virtual tuple
        r = part.groups[v.index].root()
        members.setdefault(id(r), []).append(v.index)
        root_of[v.index] = id(r)
        roots[id(r)] = r
    for idx in members.values():  # (each group's nodes as the file lists them, as before)
        idx.sort(key=lambda i: vertices[i].position)
    ordered = _group_order(vertices, members, root_of)
    out = []
    for key in ordered:
        r = roots[key]
        anchor = vertices[r.anchor].name if r.anchor is not None else None
        # The combination of its members' kinds: the root's pattern, which steers the phases as
        # TVM's does, is the sink's and can be simpler (a Reshape fused into a Sigmoid).
        pattern = max(vertices[i].kind for i in members[key])
        out.append(FusionGroup([vertices[i].name for i in members[key]], pattern, anchor))
    return out


def fuse_ops(
    model: ModelOrGraph, max_group_size: int = MAX_GROUP_SIZE, ctx: PassContext | None = None
) -> list[list[str]]:
    """Partition the graph's nodes into TVM FuseOps fusion groups.

    Returns node names per group; every node is in exactly one group, each group lists its
    nodes in topological order, and the groups come in a topological order of the group graph
    (ties broken by the position of each group's last node). `model`: a `Graph`, a ModelProto
    (never mutated), the bytes of one or a path. `max_group_size`: an integer ≥ 1 (else an
    `OptionError`). `ctx` lends its cached shape facts.
    """
    return [g.nodes for g in fusion_groups(model, max_group_size, ctx)]


def _group_order(
    vertices: list[_Vertex], members: dict[int, list[int]], root_of: dict[int, int]
) -> list[int]:
    """Groups in a topological order of the group graph, earliest last-node first."""
    deps: dict[int, set[int]] = {k: set() for k in members}
    users: dict[int, set[int]] = {k: set() for k in members}

    def real_consumers(v: int) -> list[int]:
        out = []
        for c, _ in vertices[v].outputs:
            out.extend(real_consumers(c) if not vertices[c].name else [c])
        return out

    for v in vertices:
        if not v.name:
            continue
        g = root_of[v.index]
        for c in real_consumers(v.index):
            h = root_of[c]
            if h != g:
                deps[h].add(g)
                users[g].add(h)
    last = {k: max(vertices[i].position for i in idx) for k, idx in members.items()}
    ready = [(last[k], k) for k, d in deps.items() if not d]
    heapq.heapify(ready)
    order = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(k)
        for h in users[k]:
            deps[h].discard(k)
            if not deps[h]:
                heapq.heappush(ready, (last[h], h))
    if len(order) != len(members):
        raise GraphoptError("internal error in fuse_ops: the fusion groups form a cycle")
    return order
