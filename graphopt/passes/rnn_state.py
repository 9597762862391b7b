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
onnxruntime does not hold equal), or look into com.microsoft's quantized LSTMs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx

from graphopt.ir import Graph
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import is_default_domain
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
    each dim shown equal: the same number, or the same symbolic dim with one source (see
    `_shared_dims`). A zero of another type or shape (one that would broadcast, or a batch
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
