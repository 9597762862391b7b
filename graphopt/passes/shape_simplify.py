"""Shape subgraphs (`Shape → Gather/Slice → Unsqueeze → Concat → Reshape`) become constants.

Exporters compute Reshape/Resize/Expand targets at run time from `Shape(x)`. Where the dims
those subgraphs read are statically known, the reads become constants and the rest of the
subgraph folds away (this pass runs the constant folder from what it creates). Dims that are
dynamic are left alone: `Gather(Shape(x), 0)` with a symbolic batch stays, while
`Gather(Shape(x), 1)` of a static channel count becomes a constant.

A Reshape whose target is `Concat` of positive constants and one dim computed at run time
(`Concat(Unsqueeze(Gather(Shape(x), 0)), [512])`, dynamic batch) gets the constant target
with -1 there: the element count fixes that dim.

What it does not do: symbolic arithmetic on dynamic dims (e.g. proving `N*C/C == N`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from graphopt.analysis.dominators import constant_nodes
from graphopt.analysis.fold_kernels import node_slice_parameters, onnx_slice
from graphopt.analysis.runtime_shapes import is_suspect
from graphopt.analysis.shapes import disputed_slice_end
from graphopt.analysis.usedef import computed_from
from graphopt.ir import Graph
from graphopt.ir.values import declared_dims
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import (
    DEFAULT_SIZE_LIMIT,
    ConstantFolder,
    check_size_limit,
    dims_in_dispute,
    initializers_allowed,
    is_default_domain,
    shape_value,
)
from graphopt.passes.noop import dims_inference_counts_apart
from graphopt.patterns.engine import RANK_OF_BROADCAST, RANK_OF_FIRST_INPUT

Dims = tuple[int | str | None, ...]


def _shape_dims(graph: Graph, ctx: PassContext, tensor: str, depth: int = 0) -> Dims | None:
    """The dims `tensor` holds when it is computed from shapes (symbolic ones too): Shape(x)
    with its start/end, and an integer Cast, a Gather or Slice on axis 0 of such, or a Concat
    of such and 1-D integer constants (jax2tf's Cast(Shape(x), int32), torch dynamo's
    Gather(Shape(y), perm))."""
    from graphopt.analysis.shapes import shape_facts

    node = graph.producer_node(tensor)
    if node is None or not is_default_domain(node) or depth > 16 or not node.input:
        return None
    if node.op_type == "Shape":
        dims = shape_facts(graph, ctx).shape(node.input[0])
        if dims is None or node.input[0] in dims_in_dispute(graph, ctx):
            return None
        if node.input[0] in dims_inference_counts_apart(graph, ctx):
            return None  # a dim the checker's inference counts otherwise
        start, end = graph.attr(node, "start", 0), graph.attr(node, "end")
        return tuple(dims[start:end])
    if node.op_type == "Cast":
        dtype = _INTEGER_TYPES.get(graph.attr(node, "to"))
        if dtype is None:
            return None
        dims = _shape_dims(graph, ctx, node.input[0], depth + 1)
        info = np.iinfo(dtype)
        if dims is not None and any(
            isinstance(d, int) and not info.min <= d <= info.max for d in dims
        ):
            return None  # wrapped by the Cast (and a later Cast back keeps it wrapped)
        return dims
    if node.op_type == "Concat":
        if graph.attr(node, "axis") not in (0, -1):
            return None
        joined: list[int | str | None] = []
        for piece in node.input:
            value = graph.constant(piece)
            if value is not None:
                if value.ndim != 1 or value.dtype.kind not in "iu":
                    return None
                joined.extend(int(v) for v in value)
                continue
            dims = _shape_dims(graph, ctx, piece, depth + 1)
            if dims is None:
                return None
            joined.extend(dims)
        return tuple(joined)
    if node.op_type in ("Gather", "Slice"):
        picked = _pick(graph, ctx, node, depth)  # a tensor of dims is 1-D (not [[4], [N]])
        return None if picked is None or len(picked[1]) != 1 else tuple(picked[0])
    return None


def _pick(
    graph: Graph, ctx: PassContext, node: onnx.NodeProto, depth: int
) -> tuple[list[int | str | None], tuple[int, ...]] | None:
    """(the dims, the output's shape) that `Gather(d, c)` / `Slice(d, ...)` on axis 0 picks
    from a tensor `d` of dims (`_shape_dims`), or None."""
    if node.op_type == "Gather" and len(node.input) == 2:
        indices = graph.constant(node.input[1])
        if indices is None or graph.attr(node, "axis", 0) not in (0, -1):
            return None
        dims = _shape_dims(graph, ctx, node.input[0], depth + 1)
        if dims is None:
            return None
        n = len(dims)
        idx = indices.astype(np.int64)
        if np.any((idx < -n) | (idx >= n)):
            return None
        picked = [dims[int(i)] for i in np.where(idx < 0, idx + n, idx).reshape(-1)]
        return picked, tuple(idx.shape)
    if node.op_type == "Slice":
        params = node_slice_parameters(node, graph.constant, graph.opset_version(""))
        if params is None:
            return None
        starts, ends, axes, steps = params
        if len(starts) != 1 or axes[0] not in (0, -1) or steps[0] == 0:
            return None
        if disputed_slice_end(ends[0], steps[0]):
            return None  # onnxruntime picks other dims than ONNX
        dims = _shape_dims(graph, ctx, node.input[0], depth + 1)
        if dims is None:
            return None
        picked = list(dims)[onnx_slice(len(dims), starts[0], ends[0], steps[0])]
        return picked, (len(picked),)
    return None


def _picked_dims(graph: Graph, ctx: PassContext, node: onnx.NodeProto) -> np.ndarray | None:
    """The value of `Gather(d, c)` / `Slice(d, ...)` of a tensor of dims (`_shape_dims`) when
    the dims it picks are static (the others may be dynamic)."""
    if not node.input or not is_default_domain(node):
        return None
    picked = _pick(graph, ctx, node, 0)
    if picked is None or not all(isinstance(d, int) for d in picked[0]):
        return None
    dims = [d for d in picked[0] if isinstance(d, int)]
    dtype = _source_dtype(graph, node.input[0])
    if dtype is None or any(d > np.iinfo(dtype).max for d in dims):
        return None  # a dim an int32 Cast would have wrapped: left as it is
    return np.array(dims, dtype=dtype).reshape(picked[1])


def _source_dtype(graph: Graph, tensor: str) -> type | None:
    """The integer dtype of a tensor of dims: int64 from Shape, the Cast's or the Concat's
    otherwise (None when it cannot be told)."""
    node = graph.producer_node(tensor)
    if node is None:
        return None
    if node.op_type in ("Shape", "Gather", "Slice"):
        return np.int64 if node.op_type == "Shape" else _source_dtype(graph, node.input[0])
    if node.op_type == "Cast":
        return _INTEGER_TYPES.get(graph.attr(node, "to"))
    if node.op_type == "Concat":
        for piece in node.input:
            value = graph.constant(piece)
            if value is not None:
                return value.dtype.type
            found = _source_dtype(graph, piece)
            if found is not None:
                return found
    return None


_INTEGER_TYPES: dict[int, type] = {
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
}


@register_pass
@dataclass
class SimplifyShapeSubgraphs(Pass):
    """Replace reads of static dims by constants, then fold what they feed.

    Shape(x)[start:end] with those dims static                 ⇒  constant
    Gather(Shape(x), c) / Slice(Shape(x), …) picking static dims  ⇒  constant
    Reshape(x, Concat(c₁ … d … cₖ)), cᵢ > 0 constant, d one dim   ⇒  Reshape(x, [c₁ … -1 … cₖ])
    then constant folding from the new constants (Unsqueeze, Concat, Cast, arithmetic, ...).
    """

    name = "simplify-shape-subgraphs"
    opt_level = 1
    size_limit: int = DEFAULT_SIZE_LIMIT

    def __post_init__(self) -> None:
        check_size_limit(self.size_limit)  # (constant-folding's option, the same meaning)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        readers = [
            n
            for n in graph.nodes.values()
            if n.op_type in ("Shape", "Size", "Gather", "Slice") and is_default_domain(n)
        ]
        if not any(n.op_type in ("Shape", "Size") for n in readers):
            return PassResult(False, {"replaced": 0, "folded": 0})
        if not initializers_allowed(graph, ctx, self.name):
            return PassResult(False, {"replaced": 0, "folded": 0})
        replaced = self._constant_reshape_targets(graph, ctx)
        seeds: list[onnx.NodeProto] = []
        for node in readers:
            if node.name not in graph.nodes or not node.output or not node.output[0]:
                continue
            out = node.output[0]
            if node.op_type in ("Shape", "Size"):
                if graph.is_constant(node.input[0]):
                    continue  # left to constant folding
                if node.input[0] in dims_inference_counts_apart(graph, ctx):
                    reason = f"ONNX inference counts the dims of {node.input[0]!r} otherwise"
                    ctx.note(self.name, node.name, "refused", reason)
                    continue
                value = shape_value(graph, ctx, node)
            else:
                value = _picked_dims(graph, ctx, node)
            if value is None:
                continue
            if graph.is_graph_output(out):
                ctx.note(self.name, node.name, "refused", f"{out!r} is a graph output")
                continue
            seeds.extend(graph.consumer_nodes(out))
            graph.remove_node(node)
            graph.add_initializer(out, value, exact_name=True)
            ctx.note(self.name, node.name, "applied")
            replaced += 1
        folder = ConstantFolder(graph, ctx, self.name, self.size_limit)
        folder.run(n for n in seeds if n.name in graph.nodes)
        return PassResult(
            replaced + folder.folded > 0, {"replaced": replaced, "folded": folder.folded}
        )

    def _constant_reshape_targets(self, graph: Graph, ctx: PassContext) -> int:
        """Reshape(x, Concat(c₁, …, d, …, cₖ)) with every cᵢ constant and > 0 and d one
        element computed at run time ⇒ Reshape(x, [c₁, …, -1, …, cₖ]): numel(x) fixes d.
        (Exact whatever d is where the original runs: 0 copies x's dim, whose size the
        element count gives too.) Read from the target's nodes, never from declared shapes,
        which exporters get wrong (ddddocr's OCR declares a rank-3 output as rank 2). Not for
        an x whose element count ONNX inference takes otherwise than onnxruntime
        (`dims_inference_counts_apart`: after a ceil_mode pool; `dims_in_dispute`: from a
        Range onnxruntime 1.32 counts apart), which the checker and onnxruntime's loader
        would divide the -1 out of, nor where inference may come to count x so only after
        a later pass (`counts_inference_may_learn`)."""
        replaced = 0
        for node in list(graph.nodes.values()):
            if node.op_type != "Reshape" or not is_default_domain(node) or len(node.input) != 2:
                continue
            target = _one_unknown_target(graph, node.input[1])
            if target is None:
                continue
            x = node.input[0]
            if x in dims_in_dispute(graph, ctx) or x in dims_inference_counts_apart(graph, ctx):
                # (the checker's inference divides the -1 out of its own count, which may
                # not divide: "Dimension could not be inferred: incompatible shapes")
                reason = f"ONNX inference counts the dims of {x!r} otherwise"
                ctx.note(self.name, node.name, "refused", reason)
                continue
            if x in counts_inference_may_learn(graph, ctx):
                reason = f"ONNX inference may count the dims of {x!r} otherwise once it can"
                ctx.note(self.name, node.name, "refused", reason)
                continue
            shape_name = graph.add_initializer(f"{node.output[0]}_shape", target)
            graph.set_input(node, 1, shape_name)
            ctx.note(self.name, node.name, "applied", f"target {target.tolist()}")
            replaced += 1
        return replaced


_LEARN_KEY = "counts-inference-may-learn"


def counts_inference_may_learn(graph: Graph, ctx: PassContext) -> frozenset[str]:
    """Tensors whose count ONNX inference may come to take otherwise than onnxruntime after a
    later pass: those computed both from a node of a kind whose count the two may take apart
    (`runtime_shapes.is_suspect`: Resize, ceil_mode pools, ...; or a Range) and from a value
    computed from constants alone that is no constant yet (a Dropout of one, which constant
    folding leaves to eliminate-noops). Once that value is a constant,
    inference sees it: Resize(x, , Dropout(c)) has no dims to inference, Resize(x, , c) has
    inference's (10 scaled by 0.7: 6, onnxruntime 7); `dims_inference_counts_apart` and
    `dims_in_dispute` say so only from then on. Cached in `ctx.facts`."""
    cached = ctx.facts.get(_LEARN_KEY)
    if isinstance(cached, frozenset):
        return cached
    pending = [
        graph.nodes[name]
        for name in constant_nodes(graph)
        if not all(graph.is_constant(t) for t in graph.outputs_of(name) if t)
    ]
    learn: set[str] = set()
    if pending:
        suspects = [n for n in graph.nodes.values() if is_suspect(n) or n.op_type == "Range"]
        if suspects:
            learn = computed_from(graph, _outputs(suspects)) & computed_from(
                graph, _outputs(pending)
            )
    ctx.facts[_LEARN_KEY] = frozen = frozenset(learn)
    return frozen


def _outputs(nodes: list[onnx.NodeProto]) -> list[str]:
    return [o for node in nodes for o in node.output if o]


def _one_unknown_target(graph: Graph, tensor: str) -> np.ndarray | None:
    """[c₁, …, -1, …, cₖ] when `tensor` is Concat(axis 0) of 1-D constants > 0 and exactly
    one one-element piece computed at run time (`_one_element`), or an int64 Cast of such a
    Concat of integers (jax2tf computes targets in int32); None otherwise."""
    concat = graph.producer_node(tensor)
    if concat is not None and concat.op_type == "Cast" and is_default_domain(concat):
        if graph.attr(concat, "to") != onnx.TensorProto.INT64 or not concat.input:
            return None
        concat = graph.producer_node(concat.input[0])
    if concat is None or concat.op_type != "Concat" or not is_default_domain(concat):
        return None
    if graph.attr(concat, "axis") not in (0, -1):
        return None
    parts: list[int] = []
    unknown = 0
    for piece in concat.input:
        value = graph.constant(piece)
        if value is None:
            if not _one_element(graph, piece):
                return None
            unknown += 1
            parts.append(-1)
        elif value.ndim != 1 or value.dtype not in (np.int64, np.int32) or np.any(value <= 0):
            return None
        else:
            parts.extend(int(v) for v in value)
    return np.array(parts, dtype=np.int64) if unknown == 1 else None


def _one_element(graph: Graph, tensor: str) -> bool:
    """`tensor` is Unsqueeze(s, [0]) of a scalar s (`_is_scalar`) or one dim of a shape
    (`_one_shape_dim`): one element, by its nodes."""
    node = graph.producer_node(tensor)
    if node is None or not is_default_domain(node):
        return False
    if node.op_type == "Cast" and node.input:  # one element whatever its type
        return _one_element(graph, node.input[0])
    if node.op_type != "Unsqueeze":
        return _one_shape_dim(graph, node)
    axes = graph.constant(node.input[1]) if len(node.input) > 1 else graph.attr(node, "axes")
    return (
        axes is not None
        and np.asarray(axes).reshape(-1).tolist() in ([0], [-1])
        and (_is_scalar(graph, node.input[0], 0))
    )


def _one_shape_dim(graph: Graph, node: onnx.NodeProto) -> bool:
    """`node` picks exactly one dim of a shape: Shape(x) with start/end, Slice(d) over one
    element of a tensor of dims d of proven length (`_dims_length`), or Gather(d, [i]) with i
    in range (out of range the original fails, where a -1 would run). Shape(x)[1:2] of an x of
    unknown rank may hold no dim at all: refused."""
    if node.op_type == "Shape":
        picked = _shape_of_rank(graph, node)
        return picked is not None and len(picked) == 1
    if not node.input:
        return False
    if node.op_type == "Gather" and len(node.input) == 2:
        index = graph.constant(node.input[1])
        if index is None or index.shape != (1,) or graph.attr(node, "axis", 0) != 0:
            return False
        length = _dims_length(graph, node.input[0], 0)  # a 1-D tensor of dims
        # (an index out of range fails the original: a -1 in its place would run)
        return length is not None and -length <= int(index[0]) < length
    if node.op_type == "Slice":
        params = node_slice_parameters(node, graph.constant, graph.opset_version(""))
        length = _dims_length(graph, node.input[0], 0)
        if params is None or length is None:
            return False
        starts, ends, axes, steps = params
        if len(starts) != 1 or axes[0] not in (0, -1) or steps[0] == 0:
            return False
        return len(range(length)[onnx_slice(length, starts[0], ends[0], steps[0])]) == 1
    return False


def _dims_length(graph: Graph, tensor: str, depth: int) -> int | None:
    """The length of a 1-D tensor of dims, by its nodes: Shape(x) of an x of proven rank, an
    integer Cast of such, Gather(d, c) with 1-D constant c of such (torch dynamo's
    Gather(Shape(y), perm)), or a Concat of such and 1-D constants."""
    node = graph.producer_node(tensor)
    if node is None or not is_default_domain(node) or depth > 16 or not node.input:
        return None
    if node.op_type == "Shape":
        axes = _shape_of_rank(graph, node)
        return None if axes is None else len(axes)
    if node.op_type == "Cast":
        return _dims_length(graph, node.input[0], depth + 1)
    if node.op_type == "Gather" and len(node.input) == 2:
        index = graph.constant(node.input[1])
        if index is None or index.ndim != 1 or graph.attr(node, "axis", 0) not in (0, -1):
            return None
        inner = _dims_length(graph, node.input[0], depth + 1)
        if inner is None or np.any((index < -inner) | (index >= inner)):
            return None  # (an index out of range fails the original)
        return index.size
    if node.op_type == "Concat" and graph.attr(node, "axis") in (0, -1):
        total = 0
        for piece in node.input:
            value = graph.constant(piece)
            length = value.size if value is not None and value.ndim == 1 else None
            if length is None:
                length = _dims_length(graph, piece, depth + 1)
            if length is None:
                return None
            total += length
        return total
    return None


def _shape_of_rank(graph: Graph, shape: onnx.NodeProto) -> range | None:
    """The axes of x that `shape`, Shape(x) with its start/end, reads, when x's rank is proven."""
    if not is_default_domain(shape) or not shape.input:
        return None
    rank = _proven_rank(graph, shape.input[0], 0)
    if rank is None:
        return None
    return range(rank)[graph.attr(shape, "start", 0) : graph.attr(shape, "end")]


def _proven_rank(
    graph: Graph, tensor: str, depth: int, memo: dict[str, int | None] | None = None
) -> int | None:
    """The rank of `tensor` by what holds at run time: a graph input's declared rank (runtimes
    refuse a feed of another), a constant's, a Reshape's constant target length, Flatten's 2,
    a Conv's weight rank, its first input's through a rank-keeping op, the largest of its
    inputs' through a broadcasting one (PRelu too: onnxruntime broadcasts its slope both
    ways). Never a value_info's: nothing checks those, and exporters get them wrong."""
    if memo is None:
        memo = {}
    elif tensor in memo:
        return memo[tensor]
    memo[tensor] = None  # a cycle (invalid) proves nothing
    rank = _rank_by_nodes(graph, tensor, depth, memo)
    memo[tensor] = rank
    return rank


def _rank_by_nodes(
    graph: Graph, tensor: str, depth: int, memo: dict[str, int | None]
) -> int | None:
    if graph.is_graph_input(tensor):
        vi = next((v for v in graph.proto.input if v.name == tensor), None)
        dims = declared_dims(vi) if vi is not None else None
        return None if dims is None else len(dims)
    value = graph.constant(tensor)
    if value is not None:
        return value.ndim
    node = graph.producer_node(tensor)
    if node is None or not is_default_domain(node) or depth > 64 or node.output[0] != tensor:
        return None
    if node.op_type == "Flatten":
        return 2
    if node.op_type == "Reshape" and len(node.input) > 1:
        target = graph.constant(node.input[1])
        return target.size if target is not None and target.ndim == 1 else None
    if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1:
        weight = graph.constant(node.input[1])
        if weight is not None:
            return weight.ndim
        return _proven_rank(graph, node.input[0], depth + 1, memo)
    if node.op_type in RANK_OF_BROADCAST or node.op_type == "PRelu":
        # (onnxruntime broadcasts PRelu's slope both ways: x[N] with a slope [2, 1] is [2, N])
        ranks = [_proven_rank(graph, t, depth + 1, memo) for t in node.input if t]
        if not ranks or any(r is None for r in ranks):
            return None
        return max(r for r in ranks if r is not None)
    if node.op_type in RANK_OF_FIRST_INPUT or node.op_type == "Concat":
        return _proven_rank(graph, node.input[0], depth + 1, memo)
    return None


def _is_scalar(graph: Graph, tensor: str, depth: int) -> bool:
    """A 0-d tensor, by its nodes: a 0-d constant, Gather(Shape(x), 0-d constant), or a
    Cast/Neg or Add/Sub/Mul/Div of such (what exporters compute target dims with)."""
    value = graph.constant(tensor)
    if value is not None:
        return value.ndim == 0
    node = graph.producer_node(tensor)
    if node is None or not is_default_domain(node) or depth > 8:
        return False
    if node.op_type == "Gather":
        index = graph.constant(node.input[1])
        source = graph.producer_node(node.input[0])
        if (
            index is None
            or index.ndim != 0
            or source is None
            or source.op_type != "Shape"
            or not is_default_domain(source)
        ):
            return False
        axes = _shape_of_rank(graph, source)  # (an index out of range fails the original)
        return axes is None or -len(axes) <= int(index) < len(axes)
    if node.op_type in ("Cast", "Neg"):
        return _is_scalar(graph, node.input[0], depth + 1)
    if node.op_type in ("Add", "Sub", "Mul", "Div"):
        return all(_is_scalar(graph, i, depth + 1) for i in node.input)
    return False
