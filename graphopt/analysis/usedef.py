"""Use-def helpers over a `Graph`: node successors and predecessors, the nodes some tensors
depend on, topological order, and a non-mutating way to analyse a ModelProto or a path.

What it does not do: build any new graph structure, or mutate anything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import onnx

from graphopt.errors import LoadError
from graphopt.ir import Graph, check_model_basics, load
from graphopt.ir.io_names import as_text
from graphopt.ir.model_io import check_nested

ModelOrGraph = Graph | onnx.ModelProto | bytes | str | os.PathLike[str]


def as_graph(model: ModelOrGraph) -> Graph:
    """A `Graph` to analyse, without mutating the caller's object.

    A `Graph` is used as is. A path, or the bytes of a model (what `optimize` takes too), is
    loaded. A `ModelProto` is indexed through a skeleton copy (nodes and value infos,
    initializers without their data but for `small_constant` ones), so the caller's proto is
    never renamed and no weight bytes are copied; unnamed nodes get the same names `Graph`
    would give them on the full model. Every kind of model is checked as `load` checks it:
    each tensor a node reads is defined before it, each graph output is defined (`LoadError`).
    """
    if isinstance(model, Graph):
        return model
    if isinstance(model, onnx.ModelProto):
        # checked as `optimize` and a path are: an unsupported opset or no graph output (a
        # path's load refused them, a ModelProto got a tree), a tensor read before anything
        # defines it (a cycle, nodes out of order) or an undefined graph output is a
        # LoadError, not a tree
        where = "the given ModelProto"
        check_model_basics(model, where, check_nodes=False)
        check_nested(model, where)
        return Graph(skeleton_copy(model), check_as=where)
    if isinstance(model, str | os.PathLike | bytes | bytearray | memoryview):
        # indexed with load's node checks (`check_as`), as `optimize` indexes it: a node whose
        # If/Loop/Scan body reads its own output (a cycle) is a LoadError naming the model,
        # as for a ModelProto (a path's or bytes' got a topological order and a tree's error
        # that named no model)
        loaded = load(model, check_nodes=False)
        return Graph(loaded.model, check_as=loaded.where)
    raise LoadError(
        f"cannot analyse a {type(model).__name__}: pass a Graph, an onnx.ModelProto, "
        "its bytes or a path"
    )


SMALL_ELEMENTS = 64
SMALL_INT_ELEMENTS = 4096
_INT_TYPES = frozenset(
    {
        onnx.TensorProto.INT64,
        onnx.TensorProto.INT32,
        onnx.TensorProto.INT16,
        onnx.TensorProto.INT8,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.BOOL,
    }
)


def small_constant(t: onnx.TensorProto) -> bool:
    """A constant shape inference reads the values of (Reshape targets, Resize scales, shape
    arithmetic): at most 64 elements, or 4096 of an integer type, and not external data."""
    n = math.prod(t.dims) if t.dims else 1
    if t.data_location == onnx.TensorProto.EXTERNAL:
        return False
    return n <= SMALL_ELEMENTS or (t.data_type in _INT_TYPES and n <= SMALL_INT_ELEMENTS)


def skeleton_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` for analysis: everything but the data of initializers that are not
    `small_constant` (shape inference reads those) and of sparse initializers (their names
    define tensors the nodes read)."""
    out = onnx.ModelProto()
    out.ir_version = model.ir_version
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    src, g = model.graph, out.graph
    g.name = as_text(src.name)  # (a name that is not UTF-8 comes as bytes, not settable)
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    for t in src.initializer:
        h = g.initializer.add()
        if small_constant(t):
            h.CopyFrom(t)
            continue
        h.name = t.name
        h.data_type = t.data_type
        h.dims.extend(t.dims)
    for sparse in src.sparse_initializer:  # named and typed, no data: no analysis reads it
        s = g.sparse_initializer.add()
        s.dims.extend(sparse.dims)
        s.values.name = sparse.values.name
        s.values.data_type = sparse.values.data_type
        s.indices.data_type = sparse.indices.data_type
    return out


def successors(graph: Graph, node: str) -> list[str]:
    """Distinct nodes that read any output of `node`, in first-use order."""
    out: dict[str, None] = {}
    for tensor in graph.nodes[node].output:
        if tensor:
            for user in graph.consumers.get(tensor, ()):
                if user != node:
                    out[user] = None
    return list(out)


def predecessors(graph: Graph, node: str) -> list[str]:
    """Distinct nodes whose outputs `node` reads, in input order."""
    out: dict[str, None] = {}
    for tensor in graph.node_inputs(graph.nodes[node]):
        p = graph.producer.get(tensor)
        if p is not None and p != node:
            out[p] = None
    return list(out)


def live_nodes(graph: Graph, outputs: Iterable[str]) -> set[str]:
    """The nodes that tensors `outputs` depend on (inputs read by subgraphs included):

    live(n) ⇔ n produces some o ∈ outputs ∨ some live node reads an output of n.
    """
    live: set[str] = set()
    work = [graph.producer[o] for o in outputs if o in graph.producer]
    while work:
        name = work.pop()
        if name in live:
            continue
        live.add(name)
        for tensor in graph.node_inputs(graph.nodes[name]):
            p = graph.producer.get(tensor)
            if p is not None and p not in live:
                work.append(p)
    return live


def computed_from(graph: Graph, tensors: Iterable[str]) -> set[str]:
    """`tensors` and every tensor computed from them (read by a node, or by a body of one,
    whose outputs are then computed from them too): the forward twin of `live_nodes`."""
    seen: set[str] = set()
    work = list(tensors)
    while work:
        tensor = work.pop()
        if tensor not in seen:
            seen.add(tensor)
            for user in graph.consumer_nodes(tensor):
                work.extend(o for o in user.output if o)
    return seen


def writes_graph_output(graph: Graph, node: str) -> bool:
    outputs = set(graph.graph_outputs)
    return any(t in outputs for t in graph.nodes[node].output)


def output_writers(graph: Graph) -> set[str]:
    """The nodes that write a graph output (`writes_graph_output` of every node at once: the
    set of output names is made once, not once per node)."""
    return {graph.producer[t] for t in graph.graph_outputs if t in graph.producer}


def topological_order(graph: ModelOrGraph) -> list[str]:
    """Node names in a topological order (the graph's own order wherever it already is one)."""
    g = as_graph(graph)
    return [n.name for n in g.toposort()]


def exit_edges(graph: Graph) -> tuple[dict[str, list[str]], set[str]]:
    """Successor lists of every node, and the nodes that flow directly into the virtual exit."""
    succ = {name: successors(graph, name) for name in graph.nodes}
    # (writes_graph_output per node made the set of output names once per node: a model with
    # 20k nodes that are all graph outputs took 30 s here, 40k 2 min)
    writers = output_writers(graph)
    to_exit = {name for name, s in succ.items() if not s or name in writers}
    return succ, to_exit
