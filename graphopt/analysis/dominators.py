"""Use-def helpers, topological order, dominator and post-dominator trees of an ONNX graph.

The graph's nodes are the vertices; u → v when v reads a tensor u writes (subgraph bodies'
outer-scope reads included). A virtual *exit* follows every node that writes a graph output and
every node whose outputs nobody reads; a virtual *entry* precedes every node that reads a graph
input or no output of a node that computes more than a constant. Then

- v post-dominates u ⇔ every path u → exit passes through v;
- ipdom(u) = the strict post-dominator of u that every other strict post-dominator of u
  post-dominates (the closest one); `post_dominator_tree` maps u ↦ ipdom(u), or None when only
  the exit post-dominates u (u writes a graph output, or its paths reach the exit separately).

Three implementations compute the tree and must agree:

- `method="lengauer-tarjan"` (the default): immediate dominators of the reversed graph from the
  exit, by `immediate_dominators` (near-linear on any shape);
- `method="networkx"`: the same, by `networkx.immediate_dominators` (Cooper–Harvey–Kennedy);
- `method="lca"`: TVM's `DominatorTree::PostDom` (src/relay/analysis/graph_partitioner.cc): in
  reverse topological order, ipdom(u) = least common ancestor, in the tree built so far, of u's
  consumers; a node writing a graph output hangs directly under the exit. Exact on DAGs.

The last two are the independent cross-checks; both are quadratic on a "comb" (n nodes, each
read by both the first and the last node of an n-node chain: every tooth's two consumers meet
only at the chain's end, and each meeting walks up the whole chain).

What it does not do: mutate anything, or look inside subgraph bodies (an If/Loop node is one
vertex). `dominator_tree` is the forward analogue (idom from a virtual entry that stands for
the graph's inputs; constants, Constant nodes included, are no way in), found by
`immediate_dominators` (Lengauer–Tarjan over integer vertices, near-linear on any shape).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import onnx

from graphopt.analysis.op_kinds import DEFAULT_DOMAINS, RANDOM_OPS
from graphopt.analysis.usedef import (
    ModelOrGraph,
    as_graph,
    exit_edges,
    predecessors,
    successors,
    topological_order,
    writes_graph_output,
)
from graphopt.errors import LoadError, OptionError
from graphopt.ir import Graph

__all__ = [
    "ModelOrGraph",
    "as_graph",
    "checked_order",
    "constant_nodes",
    "dominator_tree",
    "exit_edges",
    "immediate_dominators",
    "inference_dropout",
    "ipdom_lca",
    "ipdom_lengauer_tarjan",
    "ipdom_networkx",
    "post_dominator_tree",
    "predecessors",
    "successors",
    "topological_order",
    "tree_depths",
    "writes_graph_output",
]

_EXIT = "\0exit"


# ---------------------------------------------------------------------------- post-dominators


PostDominatorMethod = Literal["lengauer-tarjan", "networkx", "lca"]
_METHODS = ("lengauer-tarjan", "networkx", "lca")


def post_dominator_tree(
    model: ModelOrGraph, method: PostDominatorMethod = "lengauer-tarjan"
) -> dict[str, str | None]:
    """Node name → name of its immediate post-dominator; None where only the exit post-dominates.

    `model`: a `Graph`, an `onnx.ModelProto` (never mutated), the bytes of one or a path.
    `method`: "lengauer-tarjan", "networkx" or "lca" (else an `OptionError`); all give the same
    tree, and all refuse a cycle (through an If/Loop/Scan body, which loading lets pass) with a
    `LoadError`. Only "lengauer-tarjan" is near-linear on every shape (see the module's notes).
    """
    graph = as_graph(model)
    if method not in _METHODS:
        raise OptionError(
            f"unknown post-dominator method {method!r}; use 'lengauer-tarjan', 'networkx' or 'lca'"
        )
    order = [n.name for n in checked_order(graph)]  # (a cycle is a LoadError, every method)
    succ, to_exit = exit_edges(graph)
    if method == "lengauer-tarjan":
        return ipdom_lengauer_tarjan(succ, to_exit)
    if method == "networkx":
        return ipdom_networkx(succ, to_exit)
    return ipdom_lca(order, succ, to_exit)


def checked_order(graph: Graph) -> list[onnx.NodeProto]:
    """The nodes in topological order; a cycle is a `LoadError`: one `Graph.toposort` finds,
    and a node whose If/Loop/Scan body reads the node's own output (toposort skips a node's
    reads of itself; so it does a node reading its own output directly, which loading refuses
    but an edit could make)."""
    order = graph.toposort()
    for node in order:
        own = next((t for t in node.input if t and t in node.output), None)
        if own is not None:
            raise LoadError(f"node {node.name!r} ({node.op_type}) reads its own output {own!r}")
    for node in graph.nodes_with_bodies():
        for tensor in graph.node_inputs(node):
            if graph.producer.get(tensor) == node.name:
                raise LoadError(
                    f"node {node.name!r} ({node.op_type}) reads its own output {tensor!r} in "
                    "its If/Loop/Scan body: a cycle"
                )
    return order


def ipdom_lengauer_tarjan(
    succ: Mapping[str, Sequence[str]], to_exit: Iterable[str]
) -> dict[str, str | None]:
    """Immediate post-dominators as immediate dominators of the reversed graph from the exit,
    by `immediate_dominators` (the graph numbered: 0 the exit, i + 1 the i-th node of `succ`)."""
    names = list(succ)
    index = {name: i + 1 for i, name in enumerate(names)}
    exits = set(to_exit)
    rev: list[list[int]] = [[index[u] for u in names if u in exits]]
    rev.extend([] for _ in names)
    for u, vs in succ.items():
        for v in vs:
            rev[index[v]].append(index[u])
    idom = immediate_dominators(rev, 0)
    return {
        name: (names[idom[i + 1] - 1] if idom[i + 1] > 0 else None) for i, name in enumerate(names)
    }


def ipdom_networkx(
    succ: Mapping[str, Sequence[str]], to_exit: Iterable[str]
) -> dict[str, str | None]:
    """Immediate post-dominators as immediate dominators of the reversed graph from the exit."""
    import networkx as nx  # here, not at the top: importing networkx costs ~170 ms, and
    # `optimize` with the built-in pipelines never needs it

    rev = nx.DiGraph()
    rev.add_node(_EXIT)
    rev.add_nodes_from(succ)
    for u, vs in succ.items():
        rev.add_edges_from((v, u) for v in vs)
    rev.add_edges_from((_EXIT, u) for u in to_exit)
    idom = nx.immediate_dominators(rev, _EXIT)
    return {u: (None if idom.get(u, _EXIT) == _EXIT else idom[u]) for u in succ}


def ipdom_lca(
    order: Sequence[str], succ: Mapping[str, Sequence[str]], to_exit: Iterable[str]
) -> dict[str, str | None]:
    """TVM's single-pass post-dominator tree for DAGs: LCA of the consumers, in reverse order.

    `order` must be topological. The tree's root is the exit (depth 0); a node flowing into the
    exit hangs directly under it.
    """
    exits = set(to_exit)
    parent: dict[str, str | None] = {}
    depth: dict[str | None, int] = {None: 0}
    for u in reversed(order):
        if u in exits:
            p: str | None = None
        else:
            users = succ[u]
            p = users[0]
            for v in users[1:]:
                p = _lca(p, v, parent, depth)
                if p is None:
                    break
        parent[u] = p
        depth[u] = depth[p] + 1
    return {u: parent[u] for u in succ}


def _lca(
    a: str | None, b: str | None, parent: Mapping[str, str | None], depth: Mapping[str | None, int]
) -> str | None:
    while a != b:
        if a is None or b is None:
            return None
        da, db = depth[a], depth[b]
        if da < db:
            b = parent[b]
        elif db < da:
            a = parent[a]
        else:
            a, b = parent[a], parent[b]
    return a


# ---------------------------------------------------------------------------- dominators


def dominator_tree(model: ModelOrGraph) -> dict[str, str | None]:
    """Node name → name of its immediate dominator; None where only the virtual entry (the
    graph's inputs) dominates it.

    Constants lie on no path from the entry: an initializer is no vertex, and neither is a
    `Constant` node or what is computed from constants alone (`constant_nodes`) a way in for
    the nodes that read it, as the weights they are. Such a node hangs under the entry (or
    under the constant node it reads). Random ops and ops of other domains are never constant.

    Found by `immediate_dominators` (Lengauer–Tarjan, O(E log V)); the tree is that of
    `networkx.immediate_dominators` from the entry, which was quadratic where one node reads
    every node of a long chain (its Cooper–Harvey–Kennedy intersections walk up the chain once
    per predecessor: 4k nodes ~1 s, 8k ~4 s).
    """
    graph = as_graph(model)
    checked_order(graph)
    constants = constant_nodes(graph)
    inputs = set(graph.graph_inputs)  # runtime values no node produces
    names = list(graph.nodes)
    index = {name: i + 1 for i, name in enumerate(names)}  # 0: the entry
    succ: list[list[int]] = [[] for _ in range(len(names) + 1)]
    for name in names:
        preds = predecessors(graph, name)
        if name not in constants:
            preds = [p for p in preds if p not in constants]
        v = index[name]
        for p in preds:
            succ[index[p]].append(v)
        if not preds or any(t in inputs for t in graph.node_inputs(graph.nodes[name])):
            succ[0].append(v)
    idom = immediate_dominators(succ, 0)
    return {
        name: (names[idom[i + 1] - 1] if idom[i + 1] > 0 else None) for i, name in enumerate(names)
    }


def immediate_dominators(succ: Sequence[Sequence[int]], root: int) -> list[int]:
    """Immediate dominators of the graph with vertices 0..len(succ)-1 and edges v → succ[v],
    from `root`: idom[v], or -1 for the root and for a vertex the root does not reach.

    Lengauer and Tarjan's algorithm ("A fast algorithm for finding dominators in a flowgraph",
    1979), in its simple form (path compression without balancing: O(E log V)), as Appel's
    "Modern Compiler Implementation" (19.2) writes it, with the depth-first search and the
    path compression made loops (no recursion: a 100k-node chain is 100k deep). Vertices are
    numbered in DFS preorder; semi(w) = the least-numbered v with a path v → w whose inner
    vertices are all numbered above w; idom(w) = semi(w) where the least-semi vertex u on the
    tree path semi(w) ⇝ w (semi(w) excluded) has semi(u) = semi(w), else idom(u).
    """
    n = len(succ)
    num = [-1] * n  # vertex -> DFS preorder number
    vertex: list[int] = []  # preorder number -> vertex
    parent: list[int] = []  # preorder number -> its DFS tree parent's number
    stack = [(root, -1)]
    while stack:
        v, p = stack.pop()
        if num[v] != -1:
            continue
        num[v] = len(vertex)
        vertex.append(v)
        parent.append(p)
        stack.extend((w, num[v]) for w in reversed(succ[v]) if num[w] == -1)
    reached = len(vertex)
    pred: list[list[int]] = [[] for _ in range(reached)]
    for i, v in enumerate(vertex):
        for w in succ[v]:
            pred[num[w]].append(i)
    semi = list(range(reached))
    best = list(range(reached))
    ancestor = [-1] * reached  # the forest linked so far (compressed)
    idom = [-1] * reached
    same = [-1] * reached  # idom(w) = idom(same[w]) where set
    bucket: list[list[int]] = [[] for _ in range(reached)]

    def least_semi(v: int) -> int:
        """The vertex of least semi on the forest path from v up to (not including) its root,
        compressing the path on the way."""
        path = []
        while ancestor[ancestor[v]] != -1:
            path.append(v)
            v = ancestor[v]
        for u in reversed(path):
            a = ancestor[u]
            if semi[best[a]] < semi[best[u]]:
                best[u] = best[a]
            ancestor[u] = ancestor[a]
        return best[path[0]] if path else best[v]

    for w in range(reached - 1, 0, -1):
        p = parent[w]
        s = p
        for v in pred[w]:
            candidate = v if v <= w else semi[least_semi(v)]
            if candidate < s:
                s = candidate
        semi[w] = s
        bucket[s].append(w)
        ancestor[w] = p  # link
        for v in bucket[p]:
            y = least_semi(v)
            if semi[y] == semi[v]:
                idom[v] = p
            else:
                same[v] = y
        bucket[p] = []
    for w in range(1, reached):
        if same[w] != -1:
            idom[w] = idom[same[w]]
    out = [-1] * n
    for w in range(1, reached):
        out[vertex[w]] = vertex[idom[w]]
    return out


def constant_nodes(graph: Graph) -> set[str]:
    """The nodes that compute constants: default-domain, not random (a Dropout given a
    training_mode that is not a constant false drops at random, as RandomUniform draws),
    without bodies, reading only initializers that are not graph inputs and outputs of other
    such nodes (a `Constant` node, a Reshape of a weight)."""
    inputs = set(graph.graph_inputs)
    producer = graph.producer
    out: set[str] = set()
    for node in graph.toposort():
        if node.domain not in DEFAULT_DOMAINS or node.op_type in RANDOM_OPS:
            continue
        if graph.has_subgraphs(node) or _may_drop(graph, node):
            continue
        if all(
            t not in inputs and (t not in producer or producer[t] in out)
            for t in graph.node_inputs(node)
        ):
            out.add(node.name)
    return out


def _may_drop(graph: Graph, node: onnx.NodeProto) -> bool:
    """A Dropout given a training_mode input that is not a constant false."""
    given = node.op_type == "Dropout" and len(node.input) > 2 and bool(node.input[2])
    return given and not inference_dropout(graph, node)


def inference_dropout(graph: Graph, node: onnx.NodeProto) -> bool:
    """A default-domain Dropout whose training_mode input is a constant false: the identity."""
    if node.op_type != "Dropout" or node.domain not in DEFAULT_DOMAINS or len(node.input) < 3:
        return False
    try:
        mode = graph.constant(node.input[2])
    except LoadError:  # (data that does not make its shape: not known to be false)
        return False
    return mode is not None and mode.size == 1 and not bool(mode.reshape(-1)[0])


def tree_depths(tree: Mapping[str, str | None]) -> dict[str, int]:
    """Depth of every node in a (post-)dominator tree; children of the virtual root have 1."""
    depth: dict[str, int] = {}
    for start in tree:
        chain = []
        u: str | None = start
        while u is not None and u not in depth:
            chain.append(u)
            u = tree[u]
        d = 0 if u is None else depth[u]
        for v in reversed(chain):
            d += 1
            depth[v] = d
    return depth
