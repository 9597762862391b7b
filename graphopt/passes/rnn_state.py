"""Zero initial states of RNN / GRU / LSTM become absent inputs (their default is zero).

PyTorch exports `nn.LSTM` / `nn.GRU` called without `h0` as a state computed at run time:
`ConstantOfShape(Concat(dirs, Unsqueeze(Gather(Shape(x), 1)), hidden))` and a `Slice` per
layer, 5-7 nodes a model that shape simplification cannot fold while the batch is dynamic.
ONNX defines an absent `initial_h` / `initial_c` as zeros, so such a state can simply be left
out, and dead-code elimination removes the subgraph that made it.

What it does not do: drop a state that is not provably zero (a graph input, a value computed
by arithmetic), drop one whose element type or shape is not shown to be the one the op takes
(X's type; [directions, batch, hidden], or [batch, directions, hidden] with layout=1, a fixed
batch only where X's is that number: the original fails on another, its default would not; a
symbolic batch only where it is X's, and not a name two graph input dims declare, which
onnxruntime does not hold equal, or where the nodes that make the state read X's batch dim
itself), or look into com.microsoft's quantized LSTMs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx

from graphopt.ir import Graph
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import is_default_domain
from graphopt.passes.layout import unsqueeze_axes
from graphopt.passes.noop import LazyShapes

# input index of initial_h (all three) and initial_c (LSTM)
_STATE_INPUTS = {"RNN": (5,), "GRU": (5,), "LSTM": (5, 6)}
# ops whose output is all zeros when their data input (input 0) is: they only move, copy,
# select or convert its elements
_KEEP_ZERO = frozenset(
    {"Reshape", "Slice", "Expand", "Unsqueeze", "Squeeze", "Transpose", "Identity", "Cast"}
    | {"Flatten", "Tile", "Gather"}
)
_MAX_DEPTH = 8


def is_all_zero(graph: Graph, tensor: str, depth: int = 0) -> bool:
    """True when `tensor` is provably all zeros: a constant without a nonzero (or NaN)
    element, a `ConstantOfShape` of 0, or a shape/copy op (`_KEEP_ZERO`) of such a tensor."""
    value = graph.constant(tensor)
    if value is not None:
        return value.dtype.kind in "fiub" and not np.any(value)
    node = graph.producer_node(tensor)
    if node is None or not is_default_domain(node) or depth >= _MAX_DEPTH:
        return False
    if node.op_type == "ConstantOfShape":
        fill = graph.attr(node, "value")
        return fill is None or not np.any(onnx.numpy_helper.to_array(fill))
    if node.op_type in _KEEP_ZERO and node.input and node.input[0]:
        return is_all_zero(graph, node.input[0], depth + 1)
    return False


@register_pass
@dataclass
class DropZeroRnnStates(Pass):
    """Leave out an RNN / GRU / LSTM initial state that is all zeros.

    LSTM(x, W, R, B, seq, h₀, c₀) with h₀ ≡ 0  ⇒  LSTM(x, W, R, B, seq, "", c₀)
    (likewise c₀ ≡ 0, and h₀ of RNN and GRU): ONNX's default initial state is 0.
    """

    name = "drop-zero-rnn-states"
    opt_level = 1

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        shapes = LazyShapes(graph, ctx)
        dropped = 0
        for node in list(graph.nodes.values()):
            indices = _STATE_INPUTS.get(node.op_type)
            if indices is None or not is_default_domain(node):
                continue
            for i in indices:
                if i < len(node.input) and node.input[i] and is_all_zero(graph, node.input[i]):
                    reason = _state_mismatch(graph, node, node.input[i], shapes)
                    if reason:
                        ctx.note(self.name, node.name, "refused", reason)
                        continue
                    ctx.note(self.name, node.name, "applied", f"input {i} {node.input[i]!r} is 0")
                    graph.set_input(node, i, "")
                    dropped += 1
        return PassResult(dropped > 0, {"dropped": dropped})


def _state_mismatch(graph: Graph, node: onnx.NodeProto, state: str, shapes: LazyShapes) -> str:
    """Why zero `state` is not shown to be what the op takes as its initial state ("" when it
    is): X's element type, rank 3 and [directions, batch, hidden] (batch first with layout=1),
    each dim shown equal: the same number, the same symbolic dim with one source (see
    `_shared_dims`), or for the batch the same dim of one tensor by the nodes that compute both
    (`_dim_source`, `_zero_dim_source`: inference may name neither). A zero of another type or shape (one that would broadcast, or a batch
    read from another input) fails the original; its absent default would run."""
    x = node.input[0]
    if shapes.dtype(state) is None or shapes.dtype(state) != shapes.dtype(x):
        return f"{state!r} is not known to have {x!r}'s element type"
    dims = shapes.shape(state)
    if dims is None or len(dims) != 3:
        return f"{state!r} is not known to have rank 3"
    x_dims = shapes.shape(x)
    layout = int(graph.attr(node, "layout", 0))
    batch = x_dims[1 - layout] if x_dims is not None and len(x_dims) == 3 else None
    directions = (
        2 if graph.attr(node, "direction", "forward") in ("bidirectional", b"bidirectional") else 1
    )
    hidden = graph.attr(node, "hidden_size")
    wanted = (batch, directions, hidden) if layout else (directions, batch, hidden)
    roles = ("batch", "directions", "hidden") if layout else ("directions", "batch", "hidden")
    shared = _shared_dims(graph)
    for have, want, role in zip(dims, wanted, roles, strict=True):
        if have == want and (
            isinstance(have, int) or (isinstance(have, str) and have not in shared)
        ):
            continue
        if isinstance(have, int) and isinstance(want, int):
            return f"{state!r} has dims {list(dims)}, not [directions, batch, hidden]"
        if role == "hidden":
            if want is None:  # (onnxruntime refuses such a node)
                return f"{node.op_type} has no hidden_size to check {state!r}'s dims against"
            return f"{state!r}'s hidden dim {have!r} is not known to be {want}"
        if role == "directions":
            return f"{state!r}'s directions dim {have!r} is not known to be {want}"
        if isinstance(have, int):
            # a fixed batch (a state traced at batch 1) fits only an X of that batch: the
            # original fails on any other, the absent default would run
            return f"{state!r} has a fixed batch {have}, {x!r}'s is not known to be {have}"
        axis = 1 - layout  # X's batch axis is the state's
        source = _dim_source(graph, x, axis)
        if source is not None and source == _zero_dim_source(graph, state, axis):
            continue  # both sizes are one tensor's dim, whatever inference names them
        if have is not None and have == want:
            # onnxruntime does not hold two inputs declaring one name to one size
            return f"{state!r}'s batch {have!r} is declared by more than one input dim"
        return f"{state!r}'s batch {have!r} is not known to be {x!r}'s ({want!r})"
    return ""


def _shared_dims(graph: Graph) -> set[str]:
    """The symbolic dims that more than one dim of the graph inputs declare. Such a name is a
    promise of the caller's that onnxruntime does not check (it runs an x[T, N, 8] with an
    h[1, N, 16] of another N), so two tensors inference gives it to are not shown equal. Any
    other name stands for one size wherever inference puts it (as do the unk__ names it makes
    up): it copied it from that one input dim, or from a computation it made it for."""
    declared = Counter(
        d.dim_param
        for vi in graph.proto.input
        if vi.type.HasField("tensor_type")
        for d in vi.type.tensor_type.shape.dim
        if d.HasField("dim_param")
    )
    return {name for name, count in declared.items() if count > 1}


def _axes(graph: Graph, node: onnx.NodeProto) -> list[int] | None:
    """An Unsqueeze's axes when they are constant, none negative and none twice, else None."""
    axes = unsqueeze_axes(graph, node)
    if axes is None:
        return None
    return axes if all(a >= 0 for a in axes) and len(set(axes)) == len(axes) else None


def _dim_source(graph: Graph, tensor: str, axis: int, depth: int = 0) -> tuple[str, int] | None:
    """(t, k): the tensor and axis whose size dim `axis` of `tensor` is, followed back through
    nodes that keep the sizes of the dims they move (Identity, Cast, Transpose, Unsqueeze);
    None for a dim an Unsqueeze inserts (a 1, not a source)."""
    while depth < 4 * _MAX_DEPTH:
        depth += 1
        node = graph.producer_node(tensor)
        if node is None or not is_default_domain(node) or not node.input:
            break
        if node.op_type in ("Identity", "Cast"):
            tensor = node.input[0]
        elif node.op_type == "Transpose":
            perm = graph.attr(node, "perm")
            if perm is None or axis >= len(perm):
                break
            tensor, axis = node.input[0], int(perm[axis])
        elif node.op_type == "Unsqueeze":
            axes = _axes(graph, node)
            if axes is None:
                break
            if axis in axes:
                return None
            tensor, axis = node.input[0], axis - sum(a < axis for a in axes)
        else:
            break
    return tensor, axis


def _zero_dim_source(graph: Graph, state: str, axis: int) -> tuple[str, int] | None:
    """`_dim_source` of the size a zero state `state` has at `axis`, when the nodes that make it
    show it: Identity, Cast, Unsqueeze and a Slice not on `axis` (torch's state of one layer)
    over ConstantOfShape(s), whose element `axis` is Gather(Shape(t), k) (unsqueezed, or with
    a 1-D index), Slice(Shape(t), [k], [e]) or Shape(t) itself in a Concat: t's dim k. None
    where they do not. Only an equality with X's `_dim_source` proves anything: that t has a
    dim k (so the Gather or Slice that the rewrite leaves out does not fail, and a piece of
    the Concat whose length depends on t's rank holds that element)."""
    for _ in range(_MAX_DEPTH):
        node = graph.producer_node(state)
        if node is None or not is_default_domain(node) or not node.input:
            return None
        if node.op_type in ("Identity", "Cast"):
            state = node.input[0]
        elif node.op_type == "Unsqueeze":
            axes = _axes(graph, node)
            if axes is None or axis in axes:
                return None
            state, axis = node.input[0], axis - sum(a < axis for a in axes)
        elif node.op_type == "Slice" and graph.opset_version("") >= 10:
            sliced = (
                graph.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else None
            )
            starts = graph.constant(node.input[1]) if len(node.input) > 1 else None
            if sliced is None:  # (absent: the first len(starts) axes)
                if starts is None:
                    return None
                sliced = np.arange(starts.size)
            axes = [int(a) for a in np.asarray(sliced).reshape(-1)]
            if any(a < 0 for a in axes) or axis in axes:
                return None
            state = node.input[0]
        elif node.op_type == "ConstantOfShape":
            return _element_source(graph, node.input[0], axis)
        else:
            return None
    return None


def _element_source(graph: Graph, dims: str, i: int) -> tuple[str, int] | None:
    """`_dim_source` of the size element `i` of the 1-D tensor of dims `dims` holds (see
    `_zero_dim_source`), or None."""
    node = graph.producer_node(dims)
    if node is None or not is_default_domain(node) or not node.input:
        return None
    if node.op_type == "Concat":
        if graph.attr(node, "axis") not in (0, -1):
            return None
        for piece in node.input:
            n = _length(graph, piece)
            if n is None:
                # (Slice(Shape(t), [s], [e]) or Shape(t), as long as t's rank allows): its
                # element i, which exists where the caller finds it to be X's batch dim
                return _element_source(graph, piece, i)
            if i < n:
                return _element_source(graph, piece, i)
            i -= n
        return None
    if node.op_type == "Unsqueeze":  # Unsqueeze(Gather(Shape(t), k), [0]): [t's dim k]
        gather = graph.producer_node(node.input[0])
        if i != 0 or _axes(graph, node) != [0] or gather is None or gather.op_type != "Gather":
            return None
        k = _picked(graph, gather)
        return None if k is None or np.ndim(k) != 0 else _shape_dim(graph, gather.input[0], int(k))
    if node.op_type == "Gather":  # Gather(Shape(t), [k, ...])
        k = _picked(graph, node)
        if k is None or np.ndim(k) != 1 or i >= np.size(k):
            return None
        return _shape_dim(graph, node.input[0], int(np.asarray(k)[i]))
    if node.op_type == "Slice" and graph.opset_version("") >= 10:  # Slice(Shape(t), [s], [e])
        bounds = [graph.constant(t) if t else None for t in node.input[1:3]]
        if len(bounds) < 2 or any(b is None or b.size != 1 for b in bounds):
            return None
        start, end = (int(np.asarray(b).reshape(-1)[0]) for b in bounds)
        for name, wanted in zip(node.input[3:5], (0, 1), strict=False):  # axes [0], steps [1]
            value = graph.constant(name) if name else None
            if name and (value is None or np.asarray(value).reshape(-1).tolist() != [wanted]):
                return None
        if not 0 <= start + i < end:
            return None
        return _shape_dim(graph, node.input[0], start + i)
    if node.op_type == "Shape":
        start, end = graph.attr(node, "start", 0), graph.attr(node, "end")
        if start < 0 or (end is not None and not 0 <= start + i < end):
            return None
        return _dim_source(graph, node.input[0], start + i)
    return None


def _picked(graph: Graph, gather: onnx.NodeProto) -> np.ndarray | None:
    """A Gather's constant non-negative indices on axis 0, else None."""
    if len(gather.input) != 2 or graph.attr(gather, "axis", 0) != 0:
        return None
    k = graph.constant(gather.input[1])
    if k is None or k.dtype.kind not in "iu" or np.any(k < 0):
        return None
    return k


def _shape_dim(graph: Graph, dims: str, k: int) -> tuple[str, int] | None:
    """`_dim_source` of dim k of t where `dims` is Shape(t) (start >= 0), else None."""
    shape = graph.producer_node(dims)
    if shape is None or shape.op_type != "Shape" or not is_default_domain(shape):
        return None
    start, end = graph.attr(shape, "start", 0), graph.attr(shape, "end")
    if start < 0 or (end is not None and not 0 <= start + k < end):
        return None
    return _dim_source(graph, shape.input[0], start + k)


def _length(graph: Graph, piece: str) -> int | None:
    """How many elements the 1-D piece `piece` of a Concat of dims has, where shown."""
    value = graph.constant(piece)
    if value is not None:
        return int(value.size) if value.ndim == 1 else None
    node = graph.producer_node(piece)
    if node is None or not is_default_domain(node):
        return None
    if node.op_type == "Unsqueeze" and node.input:
        gather = graph.producer_node(node.input[0])
        if _axes(graph, node) == [0] and gather is not None and gather.op_type == "Gather":
            k = _picked(graph, gather)
            return 1 if k is not None and np.ndim(k) == 0 else None
        return None
    if node.op_type == "Gather":
        k = _picked(graph, node)
        return int(np.size(k)) if k is not None and np.ndim(k) == 1 else None
    return None
