"""Layout clean-ups around detection heads: Transpose/Reshape chains and nested Concats.

Detector heads flatten feature maps with `Reshape → Transpose` and join levels with `Concat`;
exporters leave chains that cost a copy each. These passes merge them:
`merge-transposes` composes consecutive Transposes, `merge-reshapes` keeps only the last of a
chain of reshape-like ops, `transpose-to-reshape` turns a Transpose that only moves size-1 dims
into a (copy-free) Reshape, `merge-concats` flattens a Concat of a Concat on the same axis, and
`merge-slices` turns a Slice of a Slice along other axes into one Slice.

What it does not do: move Transposes across other ops (e.g. through elementwise ops or into a
Conv's layout), or fold Split/Slice of constants (constant folding does that).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np
import onnx

from graphopt.analysis.fold_kernels import Unsupported, node_slice_parameters, normalize_axes
from graphopt.ir import Graph, values
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import initializers_allowed, is_default_domain
from graphopt.passes.noop import LazyShapes, bypass, can_bypass

RESHAPE_LIKE = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
"""Ops that only change a tensor's shape, never the order of its elements."""
NO_RESHAPE_KERNEL = frozenset(
    getattr(onnx.TensorProto, name)
    for name in ("INT4", "UINT4", "INT2", "UINT2", "FLOAT4E2M1")
    if hasattr(onnx.TensorProto, name)
)
"""Element types packed several to a byte: onnxruntime (1.32) runs Transpose of INT4/UINT4 (and
INT2/UINT2) tensors but registers no Reshape kernel for any of them."""


def composed_perm(first: Sequence[int], second: Sequence[int]) -> list[int]:
    """perm of Transpose(Transpose(x, first), second) as one Transpose: p[i] = first[second[i]]."""
    return [first[i] for i in second]


def set_ints_attribute(node: onnx.NodeProto, name: str, values: Sequence[int]) -> None:
    """Set (or add) the INTS attribute `name` of `node` (attributes are not in the use-lists)."""
    for a in node.attribute:
        if a.name == name:
            del a.ints[:]
            a.ints.extend(int(v) for v in values)
            return
    node.attribute.append(onnx.helper.make_attribute(name, [int(v) for v in values]))


def _perm(graph: Graph, node: onnx.NodeProto, shapes: LazyShapes) -> list[int] | None:
    """The perm of Transpose `node` (reversed dims when implicit); None when it is implicit and
    the rank unknown, or given but not a permutation of 0..n-1 (the original fails: nothing to
    rewrite, and composing or indexing with it would go out of range)."""
    perm = graph.attr(node, "perm")
    if perm is not None:
        given = [int(p) for p in perm]
        return given if sorted(given) == list(range(len(given))) else None
    rank = shapes.rank(node.input[0])
    return None if rank is None else list(reversed(range(rank)))


def declared_dims(graph: Graph, names: set[str]) -> dict[str, tuple[int | None, ...]]:
    """The dims the model's value_info, inputs and outputs declare for the tensors `names` (an
    int where a dim_value is given, None elsewhere)."""
    out: dict[str, tuple[int | None, ...]] = {}
    g = graph.proto
    for vi in itertools.chain(g.value_info, g.input, g.output):
        if vi.name not in names:
            continue
        dims = values.declared_dims(vi, symbolic=False)
        if dims is not None:
            out[vi.name] = dims
    return out


def _unpermuted(
    perm: Sequence[int], out_dims: tuple[int | None, ...] | None
) -> tuple[int | None, ...] | None:
    """The dims of a Transpose's input from its output's: input dim perm[i] is output dim i."""
    if out_dims is None or sorted(perm) != list(range(len(out_dims))):
        return None
    dims: list[int | None] = [None] * len(perm)
    for i, p in enumerate(perm):
        dims[p] = out_dims[i]
    return tuple(dims)


def _swaps_two_large_dims(perm: Sequence[int], dims: tuple[int | None, ...] | None) -> bool:
    """Whether `perm` changes the order of two dims known to be larger than 1: then no Reshape
    does its work, whatever the unknown dims are. Only ever used to skip a rewrite, so a wrong
    value_info can cost an optimization, never a result."""
    if dims is None or len(dims) != len(perm):
        return False
    large = [p for p in perm if (dims[p] or 0) > 1]
    return large != sorted(large)


def _single_reader(graph: Graph, tensor: str, reader: onnx.NodeProto) -> bool:
    return (
        not graph.is_graph_output(tensor)
        and list(graph.consumers.get(tensor, ())) == [reader.name]
        and list(reader.input).count(tensor) == 1
    )


@register_pass
@dataclass
class MergeTransposes(Pass):
    """Compose consecutive Transposes.

    Transpose(Transpose(x, p), q)  ⇒  Transpose(x, r), r[i] = p[q[i]];  ⇒ x when r = identity
    """

    name = "merge-transposes"
    opt_level = 1

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        shapes = LazyShapes(graph, ctx)
        merged = removed = 0
        for node in list(graph.nodes.values()):
            if node.op_type != "Transpose" or not is_default_domain(node):
                continue
            if node.name not in graph.nodes:
                continue
            inner = graph.producer_node(node.input[0])
            if inner is None or inner.op_type != "Transpose" or not is_default_domain(inner):
                continue
            p, q = _perm(graph, inner, shapes), _perm(graph, node, shapes)
            if p is None or q is None or len(p) != len(q):
                ctx.note(
                    self.name,
                    node.name,
                    "refused",
                    "a perm is invalid or implicit with the rank unknown, or the two differ in length",
                )
                continue
            x = inner.input[0]
            if shapes.rank(x) != len(p):  # (the inner one fails: left out, the model would run)
                reason = f"{x!r} is not known to have the perms' rank {len(p)}"
                ctx.note(self.name, node.name, "refused", reason)
                continue
            r = composed_perm(p, q)
            if r == list(range(len(r))):
                if not can_bypass(graph, x, node.output[0]):
                    ctx.note(self.name, node.name, "refused", "graph output must keep its name")
                    continue
                bypass(graph, node, x, node.output[0])
                removed += 1
            else:
                set_ints_attribute(node, "perm", r)
                graph.set_input(node, 0, x)
                merged += 1
            ctx.note(self.name, node.name, "applied")
        return PassResult(merged + removed > 0, {"merged": merged, "removed": removed})


@register_pass
@dataclass
class MergeReshapes(Pass):
    """Keep only the last of a chain of reshape-like ops (row-major order never changes).

    Reshape(R(x), s)  ⇒  Reshape(x, s)      R ∈ {Reshape, Flatten, Squeeze, Unsqueeze}
    when s has no 0 entries (0 copies a dim of R(x)); otherwise when R(x)'s shape is static
    (and has each dim a 0 copies: s may be longer), with those 0 entries replaced by its dims
    (none 0); where R(x)'s shape is not static, with the 0s kept and x being the input of the
    longest run of links from R(x) back that are each a Reshape with a 0 (allowzero=0) at
    every index where s has one: each link copied those dims from its input, so x has them.

    Every link left out must be shown to run for every size its input's dynamic dims may take
    (`_runs_at_every_size`), else the chain is kept: a model that fails (at a batch of 0, say)
    must not come back running.

    Unsqueeze(Reshape(x, s), axes)  ⇒  Reshape(x, s with a 1 inserted at each axis)
    when s is a constant without 0 entries and the Unsqueeze is the inner Reshape's one reader.

    Unsqueeze(Unsqueeze(x, a₁), a₂)  ⇒  Unsqueeze(x, a₂ ∪ a₁ moved past a₂)
    when the inner Unsqueeze has no other reader (negative axes need x's rank).
    """

    name = "merge-reshapes"
    opt_level = 1

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        shapes = LazyShapes(graph, ctx)
        merged = 0
        for node in list(graph.nodes.values()):
            if graph.nodes.get(node.name) is not node:
                continue  # an inner Reshape merged into its Unsqueeze
            if node.op_type == "Unsqueeze" and is_default_domain(node):
                if _unsqueeze_into_reshape(graph, ctx, node):
                    ctx.note(self.name, node.name, "applied", "Unsqueeze of a Reshape")
                    merged += 1
                elif _merge_unsqueezes(graph, ctx, node, shapes):
                    ctx.note(self.name, node.name, "applied", "Unsqueeze of an Unsqueeze")
                    merged += 1
                continue
            if node.op_type != "Reshape" or not is_default_domain(node) or len(node.input) < 2:
                continue
            inner = _reshape_like_producer(graph, node.input[0])
            if inner is None:
                continue
            target = graph.constant(node.input[1])
            if target is None:
                continue
            values = [int(v) for v in target.reshape(-1)]
            chain = [inner]
            while (further := _reshape_like_producer(graph, chain[-1].input[0])) is not None:
                chain.append(further)
            copied = [i for i, v in enumerate(values) if v == 0]
            new_target: np.ndarray | None = None
            same_failure: set[int] = set()  # dims of x at 0 of which the new Reshape fails too
            if copied and not graph.attr(node, "allowzero", 0):
                middle = shapes.static(node.input[0])
                if middle is None:
                    # keep the 0s and merge only across the links that each copy every such
                    # dim i from their own input (so that it is the new input's dim i)
                    kept = 0
                    while kept < len(chain) and _copies_dims(graph, chain[kept], copied):
                        kept += 1
                    if kept == 0:
                        reason = "0 in the shape copies a dynamic dim not copied from x"
                        ctx.note(self.name, node.name, "refused", reason)
                        continue
                    del chain[kept:]
                    if -1 in values:  # copies each such dim of x: P = 0 when one of them is 0
                        same_failure = set(copied)
                else:
                    if not initializers_allowed(graph, ctx, self.name):
                        continue
                    if copied[-1] >= len(middle):  # the original fails: nothing to merge
                        ctx.note(self.name, node.name, "refused", "a 0 copies a dim past the rank")
                        continue
                    values = [middle[i] if v == 0 else v for i, v in enumerate(values)]
                    if 0 in values:
                        continue  # a genuine zero-size dim: leave the chain as it is
                    new_target = np.array(values, np.int64)
            failing = next(
                (n for n in chain if not _runs_at_every_size(graph, n, shapes, same_failure)), None
            )
            if failing is not None:
                # a link that fails (Reshape(x[2, 3], [4, -1]); Reshape(x[N, 6], [0, -1]) at
                # N = 0): left out of the chain, the model would run
                reason = f"{failing.name or failing.output[0]} is not shown to run"
                ctx.note(self.name, node.name, "refused", reason)
                continue
            if new_target is not None:
                name = graph.add_initializer(f"{node.output[0]}_shape", new_target)
                graph.set_input(node, 1, name)
            graph.set_input(node, 0, chain[-1].input[0])
            ctx.note(self.name, node.name, "applied")
            merged += 1
        return PassResult(merged > 0, {"merged": merged})


def _runs_at_every_size(
    graph: Graph, link: onnx.NodeProto, shapes: LazyShapes, same_failure: AbstractSet[int]
) -> bool:
    """Whether reshape-like `link` runs whatever sizes its input's dynamic dims take, but for
    a 0 in its dims at `same_failure` (indices where the Reshape that stays fails as well).

    Inference gives no shape to a link it finds failing (Reshape(x[2, 3], [4, -1]), a Squeeze
    of a dim 2), but it takes a dynamic dim to be whatever lets the node run. So a Squeeze's
    axes must be static 1s, and a Reshape's constant target t of x (d dims, s of them
    dynamic, S the product of the static ones) must fit every size of the s:
    with a -1, the other entries' product P (a 0 copying a static dim of x) must be > 0
    (onnxruntime fails a -1 beside a size 0: Reshape(x[N, 6], [0, -1]) at N = 0) and divide S;
    without, t must copy every dynamic dim (0 at its index, allowzero=0) and the rest of t
    multiply to S. Flatten and Unsqueeze run at any size once inference checked their axes.
    A -1 beside a 0 copying dynamic dim k is kept when k is in `same_failure`: the chain copied
    dim k of x all the way, and the Reshape that stays copies it beside a -1, failing alike."""
    if shapes.shape(link.output[0]) is None:
        return False
    if link.op_type not in ("Reshape", "Squeeze"):
        return True
    dims = shapes.shape(link.input[0])
    if dims is None:
        return False
    if link.op_type == "Squeeze":
        if graph.opset_version("") >= 13:
            given = len(link.input) > 1 and bool(link.input[1])
            axes = graph.constant(link.input[1]) if given else None
            if given and axes is None:
                return False
        else:
            axes = graph.attr(link, "axes")
        if axes is None:
            return True  # squeezes the dims that are 1, whatever they are
        try:
            chosen = normalize_axes([int(a) for a in np.asarray(axes).reshape(-1)], len(dims))
        except Unsupported:
            return False
        return all(dims[a] == 1 for a in chosen)
    target = graph.constant(link.input[1]) if len(link.input) > 1 else None
    if target is None or target.ndim != 1:
        return False
    t = [int(v) for v in target]
    copies = set() if graph.attr(link, "allowzero", 0) else {i for i, v in enumerate(t) if v == 0}
    if any(i >= len(dims) for i in copies):
        return False
    dynamic = {i for i, d in enumerate(dims) if not isinstance(d, int)}
    static = int(np.prod([d for d in dims if isinstance(d, int)], dtype=np.int64))
    kept = copies & dynamic  # dims copied whatever their size
    rest = [v for i, v in enumerate(t) if v != -1 and i not in copies]
    rest += [d for i, d in enumerate(dims) if i in copies - kept and isinstance(d, int)]
    product = int(np.prod(rest, dtype=np.int64))
    if -1 in t:
        return kept <= same_failure and product > 0 and static % product == 0
    return kept == dynamic and product == static


def _copies_dims(graph: Graph, link: onnx.NodeProto, dims: list[int]) -> bool:
    """Whether reshape-like `link` is a Reshape whose constant shape has a 0 at each index
    of `dims` and allowzero=0: then its output's dim i is its input's dim i for each i (when
    it runs at all; an input of rank <= i fails it)."""
    if link.op_type != "Reshape" or len(link.input) < 2 or graph.attr(link, "allowzero", 0):
        return False
    shape = graph.constant(link.input[1])
    if shape is None or shape.ndim != 1:
        return False
    return all(i < shape.size and int(shape[i]) == 0 for i in dims)


def _unsqueeze_into_reshape(graph: Graph, ctx: PassContext, node: onnx.NodeProto) -> bool:
    """Replace `node`, Unsqueeze(Reshape(x, s), axes), by Reshape(x, s with 1s at axes) when
    s is constant with no 0 (which would copy a dim the axes shift) and the inner Reshape has
    no other reader. True when it did."""
    inner = graph.producer_node(node.input[0]) if node.input else None
    if inner is None or inner.op_type != "Reshape" or not is_default_domain(inner):
        return False
    if len(inner.input) < 2 or len(graph.consumer_nodes(inner.output[0])) != 1:
        return False
    if graph.is_graph_output(inner.output[0]):
        return False
    target = graph.constant(inner.input[1])
    wanted = unsqueeze_axes(graph, node)
    if target is None or target.ndim != 1 or wanted is None:
        return False
    values = [int(v) for v in target]
    try:
        positions = sorted(normalize_axes(wanted, len(values) + len(wanted)))
    except Unsupported:  # an axis out of range: the original fails, nothing to merge
        return False
    if 0 in values or len(set(positions)) != len(positions):
        return False
    if not initializers_allowed(graph, ctx, "merge-reshapes"):
        return False
    for a in positions:
        values.insert(a, 1)
    shape = graph.add_initializer(f"{node.output[0]}_shape", np.array(values, np.int64))
    source, output, name = inner.input[0], node.output[0], node.name
    graph.remove_node(node)
    graph.remove_node(inner)
    graph.make_node("Reshape", [source, shape], [output], name=name)
    return True


def _merge_unsqueezes(
    graph: Graph, ctx: PassContext, node: onnx.NodeProto, shapes: LazyShapes
) -> bool:
    """Replace `node`, Unsqueeze(Unsqueeze(x, a1), a2), by one Unsqueeze of x when the inner
    one has no other reader and both axes lists are known. True when it did."""
    inner = graph.producer_node(node.input[0]) if node.input else None
    if inner is None or inner.op_type != "Unsqueeze" or not is_default_domain(inner):
        return False
    if not inner.input or not inner.input[0]:
        return False
    if len(graph.consumer_nodes(inner.output[0])) != 1 or graph.is_graph_output(inner.output[0]):
        return False
    first, second = unsqueeze_axes(graph, inner), unsqueeze_axes(graph, node)
    if first is None or second is None or not first or not second:
        return False
    rank = None
    if min(first + second) < 0:
        rank = shapes.rank(inner.input[0])
        if rank is None:
            return False
    try:
        if rank is None:  # non-negative axes: positions from the front, whatever the rank
            inner_axes, outer_axes = sorted(first), sorted(second)
        else:
            inner_axes = sorted(normalize_axes(first, rank + len(first)))
            outer_axes = sorted(normalize_axes(second, rank + len(first) + len(second)))
    except Unsupported:  # an axis out of range: the original fails, nothing to merge
        return False
    if len(set(inner_axes)) != len(first) or len(set(outer_axes)) != len(second):
        return False  # a repeated axis: the original fails

    def moved(position: int) -> int:  # where an axis of the middle tensor ends up
        for a in outer_axes:
            if a <= position:
                position += 1
        return position

    axes = sorted(outer_axes + [moved(a) for a in inner_axes])
    opset = graph.opset_version("")
    if opset >= 13 and not initializers_allowed(graph, ctx, "merge-reshapes"):
        return False
    source, output, name = inner.input[0], node.output[0], node.name
    graph.remove_node(node)
    graph.remove_node(inner)
    if opset >= 13:
        axes_name = graph.add_initializer(f"{output}_axes", np.array(axes, np.int64))
        graph.make_node("Unsqueeze", [source, axes_name], [output], name=name)
    else:
        graph.make_node("Unsqueeze", [source], [output], name=name, axes=axes)
    return True


def unsqueeze_axes(graph: Graph, node: onnx.NodeProto) -> list[int] | None:
    """The axes of an Unsqueeze (input from opset 13, attribute before), None if not constant."""
    if graph.opset_version("") >= 13:
        value = graph.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    else:
        value = graph.attr(node, "axes")
    if value is None:
        return None
    return [int(a) for a in np.asarray(value).reshape(-1)]


def _reshape_like_producer(graph: Graph, tensor: str) -> onnx.NodeProto | None:
    node = graph.producer_node(tensor)
    if node is None or node.op_type not in RESHAPE_LIKE or not is_default_domain(node):
        return None
    return node if node.input and node.input[0] else None


@register_pass
@dataclass
class TransposeToReshape(Pass):
    """A Transpose that only moves size-1 dims is a Reshape (which copies nothing).

    Transpose(x, p)  ⇒  Reshape(x, shape(y))   when the dims of x that are not 1 keep their
    relative order under p; at most one dim of y may be dynamic (it becomes -1).

    Shapes come from shape inference, run only for a Transpose that the shapes the model
    declares for x or y (value_info, graph inputs and outputs) do not already show swapping two
    dims larger than 1. Not for element types onnxruntime has no Reshape kernel for (INT4, UINT4,
    INT2, UINT2, FLOAT4E2M1: `NO_RESHAPE_KERNEL`), nor an element type not known.
    """

    name = "transpose-to-reshape"
    opt_level = 1

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if not initializers_allowed(graph, ctx, self.name):
            return PassResult(False, {"rewritten": 0})
        shapes = LazyShapes(graph, ctx)
        transposes = [
            node
            for node in graph.nodes.values()
            if node.op_type == "Transpose" and is_default_domain(node) and node.output[0]
        ]
        declared = declared_dims(graph, {t for n in transposes for t in (n.input[0], n.output[0])})
        rewritten = 0
        for node in transposes:
            x, y = node.input[0], node.output[0]
            perm = _perm(graph, node, shapes)
            if perm is None:
                continue
            if _swaps_two_large_dims(perm, declared.get(x)) or _swaps_two_large_dims(
                perm, _unpermuted(perm, declared.get(y))
            ):
                continue  # refuted by the model's own value_info: no shape inference needed
            dims = shapes.shape(x)
            if dims is None or len(perm) != len(dims):
                continue
            moved = [p for p in perm if dims[p] != 1]
            if moved != sorted(moved) or perm == list(range(len(perm))):
                continue
            out = [dims[p] for p in perm]
            if 0 in out:
                continue  # a Reshape target reads 0 as "copy this dim"
            dynamic = [i for i, d in enumerate(out) if not isinstance(d, int)]
            if len(dynamic) > 1:
                ctx.note(self.name, node.name, "refused", "more than one dynamic dim")
                continue
            dtype = shapes.dtype(x)
            if dtype is None or dtype in NO_RESHAPE_KERNEL:
                ctx.note(self.name, node.name, "refused", "no Reshape kernel for its element type")
                continue
            target = np.array([d if isinstance(d, int) else -1 for d in out], dtype=np.int64)
            shape_name = graph.add_initializer(f"{y}_shape", target)
            graph.remove_node(node)
            graph.make_node("Reshape", [x, shape_name], [y], name=f"{node.name}_as_reshape")
            ctx.note(self.name, node.name, "applied")
            rewritten += 1
        return PassResult(rewritten > 0, {"rewritten": rewritten})


@register_pass
@dataclass
class MergeConcats(Pass):
    """Flatten a Concat that feeds only a Concat on the same axis; drop constant inputs with
    no element along the axis (torch's Concat(Shape(x), [])).

    Concat(a, Concat(b, c; k), d; k)  ⇒  Concat(a, b, c, d; k)
    Concat(a, e; k), e a constant with dim k = 0  ⇒  Concat(a; k)
    """

    name = "merge-concats"
    opt_level = 1

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        shapes = LazyShapes(graph, ctx)
        merged = 0
        for node in list(graph.nodes.values()):
            if node.op_type != "Concat" or not is_default_domain(node):
                continue
            if node.name not in graph.nodes:
                continue
            axis = graph.attr(node, "axis")
            if not isinstance(axis, int):  # missing, or not an INT (axis=0.0): the original
                continue  # fails to load; nothing here reads it as an index
            inputs: list[str] = []
            changed = False
            for name in node.input:
                inner = graph.producer_node(name) if name else None
                if (
                    inner is not None
                    and inner.op_type == "Concat"
                    and is_default_domain(inner)
                    and _single_reader(graph, name, node)
                    and name not in inputs  # also read through an inner Concat flattened here
                    and isinstance(graph.attr(inner, "axis"), int)
                    and _same_axis(axis, graph.attr(inner, "axis"), shapes, name)
                ):
                    inputs.extend(inner.input)
                    graph.remove_node(inner)
                    changed = True
                else:
                    inputs.append(name)
            kept = [t for t in inputs if not _empty_along(graph, t, axis)]
            if kept and len(kept) < len(inputs):  # one input stays: it carries the dtype
                dropped = [t for t in inputs if t not in kept]
                misfit = next((t for t in dropped if not _fits(t, kept[0], axis, shapes)), None)
                if misfit is None:
                    inputs, changed = kept, True
                else:
                    reason = f"{misfit!r} is not shown to have {kept[0]!r}'s type and other dims"
                    ctx.note(self.name, node.name, "refused", reason)
            if not changed:
                continue
            out = node.output[0]
            graph.remove_node(node)
            graph.make_node("Concat", inputs, [out], name=node.name, axis=axis)
            ctx.note(self.name, node.name, "applied")
            merged += 1
        return PassResult(merged > 0, {"merged": merged})


def _empty_along(graph: Graph, tensor: str, axis: int | None) -> bool:
    """`tensor` is a constant whose dim `axis` is 0 (it adds nothing to a Concat on `axis`)."""
    if not tensor or axis is None or not graph.is_constant(tensor):
        return False
    init = graph.initializers.get(tensor)
    if init is not None:
        dims = list(init.dims)
    else:
        value = graph.constant(tensor)
        if value is None:
            return False
        dims = list(value.shape)
    return -len(dims) <= axis < len(dims) and dims[axis] == 0


def _fits(empty: str, like: str, axis: int | None, shapes: LazyShapes) -> bool:
    """Whether the empty constant `empty` is shown to join `like` in a Concat on `axis`: the
    same element type and rank, and every other dim equal to one of `like`'s static dims. (A
    misfit fails the original in onnxruntime; dropped, the rewritten model would run.)"""
    dtype, dims, like_dims = shapes.dtype(empty), shapes.shape(empty), shapes.shape(like)
    if axis is None or dtype is None or dtype != shapes.dtype(like):
        return False
    if dims is None or like_dims is None or len(dims) != len(like_dims):
        return False
    k = axis % len(dims)
    return all(
        i == k or (isinstance(d, int) and d == e)
        for i, (d, e) in enumerate(zip(like_dims, dims, strict=True))
    )


def _same_axis(a: int | None, b: int | None, shapes: LazyShapes, tensor: str) -> bool:
    if a is None or b is None:
        return False
    if a == b:
        return True
    if (a < 0) == (b < 0):
        return False
    rank = shapes.rank(tensor)
    if rank is None or not (-rank <= a < rank and -rank <= b < rank):
        return False  # (an axis out of range, a rank-0 one included: the original fails)
    return a % rank == b % rank


def constant_slice_params(
    graph: Graph, node: onnx.NodeProto, rank: int | None
) -> list[np.ndarray] | None:
    """Constant (starts, ends, axes, steps) of an opset ≥ 10 Slice with axes made non-negative;
    None when any is not a constant, or an axis is negative and the rank unknown."""
    params = node_slice_parameters(node, graph.constant, graph.opset_version(""))
    if params is None:
        return None
    starts, ends, axes, steps = (np.array(p, dtype=np.int64) for p in params)
    if (axes < 0).any():
        if rank is None:
            return None
        axes = np.where(axes < 0, axes + rank, axes)
    return [starts, ends, axes, steps]


@register_pass
@dataclass
class MergeSlices(Pass):
    """Merge a Slice of a Slice on disjoint axes into one Slice (YOLOX's Focus layer slices rows,
    then columns).

    Slice(Slice(x, s₁, e₁, a₁, k₁), s₂, e₂, a₂, k₂)  ⇒  Slice(x, s₁‖s₂, e₁‖e₂, a₁‖a₂, k₁‖k₂)
    when a₁ ∩ a₂ = ∅ (slices along different axes commute), every parameter is constant, and the
    inner Slice's output is read only by Slices (each merged in turn, so it disappears) and is
    not a graph output. Opset ≥ 10 (Slice with inputs).
    """

    name = "merge-slices"
    opt_level = 1

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if graph.opset_version("") < 10 or not initializers_allowed(graph, ctx, self.name):
            return PassResult(False)
        shapes = LazyShapes(graph, ctx)
        merged = 0
        for node in list(graph.nodes.values()):
            if (
                node.op_type != "Slice"
                or not is_default_domain(node)
                or node.name not in graph.nodes
            ):
                continue
            inner = graph.producer_node(node.input[0])
            if inner is None or inner.op_type != "Slice" or not is_default_domain(inner):
                continue
            readers = graph.consumer_nodes(inner.output[0])
            if graph.is_graph_output(inner.output[0]) or any(r.op_type != "Slice" for r in readers):
                # Only when every reader is a Slice (so each is merged in turn and the inner
                # one disappears): otherwise merging would add work, not remove it.
                ctx.note(
                    self.name,
                    node.name,
                    "refused",
                    f"{inner.output[0]} has readers other than Slices",
                )
                continue
            x = inner.input[0]
            rank = shapes.rank(x)
            outer_p, inner_p = (
                constant_slice_params(graph, node, rank),
                constant_slice_params(graph, inner, rank),
            )
            if outer_p is None or inner_p is None:
                ctx.note(
                    self.name,
                    node.name,
                    "refused",
                    "slice parameters are not constant (or negative axes with unknown rank)",
                )
                continue
            if set(outer_p[2].tolist()) & set(inner_p[2].tolist()):
                ctx.note(self.name, node.name, "refused", "both slices cut the same axis")
                continue
            names = [
                graph.add_initializer(f"{node.name}_{part}", np.concatenate([a, b]))
                for part, a, b in zip(
                    ("starts", "ends", "axes", "steps"), inner_p, outer_p, strict=True
                )
            ]
            graph.set_input(node, 0, x)
            for i, name in enumerate(names, start=1):
                graph.set_input(node, i, name)
            if not graph.consumers.get(inner.output[0]):
                graph.remove_node(inner)
            merged += 1
            ctx.note(self.name, node.name, "applied")
        return PassResult(merged > 0, {"merged": merged})
