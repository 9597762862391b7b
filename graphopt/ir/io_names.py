"""Graph input and output names that are not UTF-8 text, refused with one line.

protobuf hands a name that is not UTF-8 over as bytes (onnx.checker accepts such a model), and
code that prefixes, joins or matches names then fails with a TypeError far from the cause:
merge, split, distill-targets, quantize and check --shapes did. `require_text_names` looks at
every tensor name (merge prefixes them all). What it does not do: rename anything.
"""

from __future__ import annotations

import onnx


def require_text_io_names(model: onnx.ModelProto, where: str, error: type[Exception]) -> None:
    """An `error` naming (after `where`) the first graph input or output whose name is bytes
    (not UTF-8 in the file)."""
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for vi in values:
            if isinstance(vi.name, bytes):
                raise error(_message(where, f"graph {kind}", vi.name))


def require_text_names(model: onnx.ModelProto, where: str, error: type[Exception]) -> None:
    """`require_text_io_names`, then the same for every tensor a node reads or writes and every
    initializer, If/Loop/Scan bodies included."""
    require_text_io_names(model, where, error)
    require_text_graph_names(model.graph, where, error)


def require_text_graph_names(
    graph: onnx.GraphProto, where: str, error: type[Exception], *, nested: bool = True
) -> None:
    """An `error` naming the first input, output, initializer or node tensor of `graph` whose
    name is bytes; with `nested`, of its If/Loop/Scan bodies too. (Node names, op types and
    domains are not looked at: nothing fails on them.)"""
    for kind, values in (("body input", graph.input), ("body output", graph.output)):
        for vi in values:
            if isinstance(vi.name, bytes):
                raise error(_message(where, kind, vi.name))
    for t in graph.initializer:
        if isinstance(t.name, bytes):
            raise error(_message(where, "initializer", t.name))
    for node in graph.node:
        for name in (*node.input, *node.output):
            if isinstance(name, bytes):
                raise error(_message(where, f"tensor of node {node.op_type}", name))
        if nested:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    require_text_graph_names(a.g, where, error)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for g in a.graphs:
                        require_text_graph_names(g, where, error)


def as_text(name: str | bytes) -> str:
    """`name` as text: a name protobuf handed over as bytes (not UTF-8 in the file) with the bad
    bytes escaped. Protobuf refuses to set such bytes into a string field of another message."""
    return name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else name


def _message(where: str, kind: str, name: bytes) -> str:
    return f"{where}: {kind} {name!r} is not UTF-8 text, which graphopt cannot name or match (rename it)"
