"""Symbolic dims (dim_params) of merged models: one namespace per model, not one for all.

A dim_param names a size within its model: two inputs declared [N, 3] and [N, 5] say their
first dims are equal (TensorRT's parser names the dims so, and its builder requires them equal
at run time). Two models merged into one share that namespace, so a size two models call N for
unrelated reasons (one's batch, the other's sequence length) would become one size. `scoped`
gives a model's dim_params the names they take in the merged model: a dim of an input it shares
with an earlier model (the same merged input) takes that model's name at that position; any
other name an earlier model uses gets the model's prefix (`m1_N`). `rename` applies such
names to every value a graph declares (inputs, outputs, value_info, bodies too), and `split`
gives a task its own names back with the task table's record.

What it does not do: join two dims a model names otherwise (N and M) into one name, or rename a
dim a model leaves unnamed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import onnx

from graphopt.ir import subgraphs


def scoped(
    graph: onnx.GraphProto,
    met: Mapping[str, onnx.ValueInfoProto],
    taken: set[str],
    prefix: str,
) -> dict[str, str]:
    """{own dim_param: merged name} of the dim_params of `graph` (a model's main graph) that
    the merged model names otherwise. `met`: its input → the merged input (of an earlier
    model) it reads; `taken`: the names earlier models' dims have in the merged model (the
    names chosen here are added)."""
    names: dict[str, str] = {}
    for vi in graph.input:
        merged = met.get(vi.name)
        if merged is None:
            continue
        for own, other in zip(_dims(vi), _dims(merged), strict=False):
            if not (own.dim_param and other.dim_param) or own.dim_param in names:
                continue
            if other.dim_param not in names.values():  # (two own names for one: the first)
                names[own.dim_param] = other.dim_param
    for name in _all_dim_params(graph):
        if name in names:
            continue
        fresh, k = name, 0
        while fresh in taken:
            k += 1
            fresh = prefix + name if k == 1 else f"{prefix}{name}_{k - 1}"
        names[name] = fresh
        taken.add(fresh)
    taken.update(names.values())
    return {own: new for own, new in names.items() if own != new}


def rename(graph: onnx.GraphProto, names: Mapping[str, str]) -> None:
    """Rename the dim_params `names` maps in every value `graph` declares (bodies too), in
    place (each dim once: two names may swap)."""
    if not names:
        return
    for vi in _values(graph):
        for dim in _dims(vi):
            if dim.HasField("dim_param") and dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


def _all_dim_params(graph: onnx.GraphProto) -> Iterator[str]:
    for vi in _values(graph):
        for dim in _dims(vi):
            if dim.HasField("dim_param") and dim.dim_param:
                yield dim.dim_param


def _values(graph: onnx.GraphProto) -> Iterator[onnx.ValueInfoProto]:
    """The values `graph` and the bodies in it declare: inputs, outputs, value_info."""
    yield from graph.input
    yield from graph.output
    yield from graph.value_info
    for node in graph.node:
        for sub in subgraphs(node):
            yield from _values(sub)


def _dims(vi: onnx.ValueInfoProto) -> list[onnx.TensorShapeProto.Dimension]:
    """The dims of a tensor value's shape ([] for another type or no shape)."""
    kind = vi.type.WhichOneof("value")
    if kind == "tensor_type" and vi.type.tensor_type.HasField("shape"):
        return list(vi.type.tensor_type.shape.dim)
    if kind == "sparse_tensor_type" and vi.type.sparse_tensor_type.HasField("shape"):
        return list(vi.type.sparse_tensor_type.shape.dim)
    return []
