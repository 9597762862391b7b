"""Removal of nodes that return their input unchanged.

Each rule proves `y = x` (same values, dtype and shape) before the node is bypassed: readers of
`y` read `x`, and a graph output keeps its name (its producer is renamed, see
`Graph.replace_all_uses`), and a quantization annotation of the name that goes names the one
that stays (`replace_all_uses`'s `same_values`). Shape-dependent rules use static shapes from
`graphopt.analysis.shapes` and leave a node alone whenever a dim they need is unknown.

What it does not do: merge chains of Reshape/Transpose or rewrite one op into another (see
`layout.py`), touch nodes from custom domains, or bypass a node onnxruntime refuses as it
stands (not of its op's schema at the model's opset: `fold_kernels.schema_mismatch`; axes,
pads or repeats that do not fit the input's known rank): the model would run where the
original does not.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx

from graphopt.analysis.fold_kernels import (
    NAN_BITS_READABLE_FROM,
    saturate_allowed,
    schema_mismatch,
    zero_and_inferred_dim,
)
from graphopt.analysis.op_kinds import OP_KINDS, OpKind
from graphopt.analysis.runtime_shapes import SUSPECT_OPS, is_suspect
from graphopt.analysis.shapes import ShapeFacts, shape_facts
from graphopt.analysis.usedef import computed_from
from graphopt.ir import Graph
from graphopt.ir.graph import scope_names
from graphopt.ir.nodes import nested_bodies, subgraphs
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import dims_in_dispute, is_default_domain

log = logging.getLogger("graphopt.passes.noop")

Dims = tuple[int | str | None, ...]
UNBOUNDED = 2**31 - 1  # Slice ends at or beyond this mean "to the end" for any real tensor


# Ops whose (first) output has the rank of their first input, by the ONNX spec.
_SAME_RANK = frozenset(
    {name for name, kind in OP_KINDS.items() if kind == OpKind.ELEMWISE} - {"BitCast"}
) | {
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "GlobalLpPool", "Resize", "Upsample", "Pad", "Split", "Concat", "Slice",
    "Tile", "Softmax", "LogSoftmax", "Hardmax", "LRN", "InstanceNormalization",
    "LayerNormalization", "DepthToSpace", "SpaceToDepth", "Transpose",
}  # fmt: skip
# Elementwise after broadcasting: the output rank is the largest input rank. (TVM's BROADCAST
# also holds Expand, Tile and Unsqueeze, whose shape/repeats/axes input does not set the rank.)
_AXES_IN_ORDER = frozenset({"Expand", "Tile", "Unsqueeze"})
_BROADCAST_RANK = (
    frozenset(name for name, kind in OP_KINDS.items() if kind == OpKind.BROADCAST) - _AXES_IN_ORDER
)


class LazyShapes:
    """Shape facts computed on first use (shape inference is the costly part of these passes).

    Ranks come first from a local walk over producers (`local_rank`: constants, declared inputs,
    and ops whose output rank the spec fixes), so a rule that only needs a rank, or that a rank
    already refutes, costs no inference. Passes using this keep the value (so the rank) of every
    tensor that keeps its name, so what the walk learnt stays true while the pass runs.
    """

    def __init__(self, graph: Graph, ctx: PassContext):
        self.graph = graph
        self.ctx = ctx
        self._facts: ShapeFacts | None = None
        self._local_ranks: dict[str, int | None] = {}

    @property
    def facts(self) -> ShapeFacts:
        if self._facts is None:
            from graphopt.analysis.shapes import shape_facts

            self._facts = shape_facts(self.graph, self.ctx)
        return self._facts

    def shape(self, tensor: str) -> Dims | None:
        """`tensor`'s dims from shape inference; None (unknown) for a tensor computed from a
        Range whose length onnxruntime versions count apart (`dims_in_dispute`: inference
        gives one count, the runtime may run another, so neither its dims nor its rank, as of
        a ConstantOfShape of such a Range, is a fact), and for one whose dims ONNX inference
        counts otherwise than the facts (`dims_inference_counts_apart`: a rewrite proven from
        them may not pass the checker)."""
        init = self.graph.initializers.get(tensor)
        if init is not None and not self.graph.is_graph_input(tensor):
            return tuple(init.dims)
        dims = self.facts.shape(tensor)
        if dims is not None and (
            tensor in dims_in_dispute(self.graph, self.ctx)
            or tensor in dims_inference_counts_apart(self.graph, self.ctx)
        ):
            return None
        return dims

    def static(self, tensor: str) -> tuple[int, ...] | None:
        dims = self.shape(tensor)
        if dims is None or not all(isinstance(d, int) for d in dims):
            return None
        return tuple(int(d) for d in dims if isinstance(d, int))

    def rank(self, tensor: str) -> int | None:
        local = self.local_rank(tensor)
        if local is not None:
            return local
        dims = self.shape(tensor)
        return None if dims is None else len(dims)

    def local_rank(self, tensor: str) -> int | None:
        """The rank of `tensor` from its producers alone (no inference), or None."""
        ranks = self._local_ranks
        if tensor in ranks:
            return ranks[tensor]
        stack = [tensor]
        expanded: dict[str, tuple[str, tuple[str, ...]]] = {}  # tensor -> its rank source
        while stack:
            t = stack[-1]
            if t in ranks:
                stack.pop()
                continue
            source = expanded.get(t)
            if source is None:
                source = self._rank_source(t)
                if source is not None:
                    expanded[t] = source
                    op, inputs = source
                    deps = inputs[:1] if op in _SAME_RANK else inputs
                    missing = [d for d in deps if d and d not in ranks]
                    if missing:
                        stack.extend(missing)
                        continue
            ranks[t] = self._rank_of(t, source)
            stack.pop()
        return ranks[tensor]

    def _rank_source(self, tensor: str) -> tuple[str, tuple[str, ...]] | None:
        """The op and inputs of the producer whose input ranks decide `tensor`'s rank (None:
        decided without). Wiring is read from the graph's index (no protobuf wrappers)."""
        graph = self.graph
        if tensor in graph.initializers:
            return None
        name = graph.producer.get(tensor)
        if name is None:
            return None
        node = graph.nodes[name]
        op = node.op_type
        if op not in _SAME_RANK and op not in _BROADCAST_RANK:
            return None
        if not is_default_domain(node):
            return None
        if graph.outputs_of(name)[0] != tensor and op != "Split":  # Split: every output
            return None
        return op, graph.inputs_of(name)

    def _rank_of(self, tensor: str, source: tuple[str, tuple[str, ...]] | None) -> int | None:
        graph, ranks = self.graph, self._local_ranks
        init = graph.initializers.get(tensor)
        if init is not None and not graph.is_graph_input(tensor):
            return len(init.dims)
        if source is not None:
            op, inputs = source
            if op in _SAME_RANK:
                rank = ranks.get(inputs[0]) if inputs else None
                if rank is None and op in ("Conv", "ConvTranspose"):
                    weight = graph.initializers.get(inputs[1]) if len(inputs) > 1 else None
                    rank = len(weight.dims) if weight is not None else None  # rank(W) = rank(X)
                return rank
            known = [ranks.get(t) for t in inputs if t]
            if not known or any(r is None for r in known):
                return None
            return max(r for r in known if r is not None)
        producer = graph.producer_node(tensor)
        if producer is None:
            return self._declared_rank(tensor)
        if not is_default_domain(producer) or producer.output[0] != tensor:
            return None
        if producer.op_type == "Constant":
            value = next((a.t for a in producer.attribute if a.name == "value"), None)
            return None if value is None else len(value.dims)
        if producer.op_type == "Flatten":
            return 2
        if producer.op_type == "Reshape" and len(producer.input) > 1:
            shape = producer.input[1]
            target = graph.initializers.get(shape)
            # (not an overridable default: a feed of another length sets another rank)
            if target is not None and len(target.dims) == 1 and not graph.is_graph_input(shape):
                return int(target.dims[0])
        return None

    def _declared_tensor(self, tensor: str) -> onnx.TypeProto.Tensor | None:
        """The tensor type graph input `tensor` declares (None: no such input, or no tensor)."""
        for vi in self.graph.proto.input:
            if vi.name == tensor:
                return vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        return None

    def _declared_rank(self, tensor: str) -> int | None:
        tt = self._declared_tensor(tensor)
        return len(tt.shape.dim) if tt is not None and tt.HasField("shape") else None

    def dtype(self, tensor: str) -> int | None:
        """`tensor`'s element type: an initializer's, a graph input's as declared (no
        inference: a Focus reads the image), else from shape inference."""
        init = self.graph.initializers.get(tensor)
        if init is not None:
            return init.data_type  # an overridable default's dtype is its input's too
        declared = self._declared_tensor(tensor)
        if declared is not None:
            return declared.elem_type
        return self.facts.dtype(tensor)


_APART_KEY = "dims-inference-counts-apart"


def dims_inference_counts_apart(graph: Graph, ctx: PassContext) -> frozenset[str]:
    """Tensors whose dims ONNX inference, which `onnx.checker` and onnxruntime's loader run,
    counts otherwise than onnxruntime computes them (as the shape facts do): the outputs of
    the nodes `runtime_shapes.inference_cuts` corrects (a ceil_mode pool's last window, ...)
    and every tensor computed from them (an If reading one too).

    A rewrite proven from the facts there can leave a model that neither checks nor loads:
    a MaxPool(k 1, s 2, ceil_mode) of 4×4 is [1, 1, 2, 2] in onnxruntime, [1, 1, 3, 3] to
    inference; bypassing Reshape(y, [1, 1, 2, 2]) hands inference's dims to its readers (a
    MatMul by a [2, k] weight: "Incompatible dimensions"), folding Shape(y) hands them
    onnxruntime's (Add(y, ConstantOfShape(Shape(y))) the same). Only in a graph holding a node
    of a kind `is_suspect` names (Resize, PRelu, pools with ceil_mode, ...) at any depth
    (`holds_suspect`: an If or Loop holding one is cut, its outputs unknown to the facts, but
    the checker counts them from the body), from the nodes the shape facts' own first
    inference found (`ShapeFacts.apart_roots`): the dims the rules prove from are those
    facts', which live on across rewrites that keep every tensor's value, and so do the
    places where they are not inference's (a second inference of its own after each change
    made optimize 1.9x slower on yolov8_nudenet: 3 per default run). Cached in `ctx.facts`
    (cleared when a pass changes the graph: the tensors computed from those roots are walked
    again)."""
    cached = ctx.facts.get(_APART_KEY)
    if isinstance(cached, frozenset):
        return cached
    apart: set[str] = set()
    if holds_suspect(graph):
        apart = computed_from(graph, shape_facts(graph, ctx).apart_roots)
    ctx.facts[_APART_KEY] = frozen = frozenset(apart)
    return frozen


def every_node(graph: Graph) -> Iterator[onnx.NodeProto]:
    """The nodes of `graph`, of every If/Loop/Scan body in it (nested ones too) and of its
    model's local functions (and of the bodies in those)."""
    yield from graph.nodes.values()
    for owner in graph.nodes_with_bodies():
        for body in subgraphs(owner):
            yield from body.node
            for inner in nested_bodies(body):
                yield from inner.node
    for function in graph.model.functions:
        yield from function.node
        for node in function.node:
            for body in subgraphs(node):
                yield from body.node
                for inner in nested_bodies(body):
                    yield from inner.node


def holds_suspect(graph: Graph) -> bool:
    """Whether a node of `graph` or of a body or local function in it (`every_node`) is of a
    kind whose inferred dims onnxruntime may count otherwise (`runtime_shapes.is_suspect`).
    Not only the graph's own: an If whose branches end in a ceil_mode pool is cut from the
    shape facts (`ShapeFacts.apart_roots`, outputs of unknown rank), where the checker's
    inference takes the branches' counts ([1, 1, 3, 3] for onnxruntime's [1, 1, 2, 2]), so a
    Reshape(Squeeze(y), Concat([2], d)) given a -1 failed the checker and onnxruntime's load
    ("Dimension could not be inferred: incompatible shapes") where the original ran."""
    return any(node.op_type in SUSPECT_OPS and is_suspect(node) for node in every_node(graph))


def can_bypass(graph: Graph, src: str, out: str) -> bool:
    """Whether readers of `out` can read `src` instead without adding an Identity: always,
    unless `out` is a graph output and `src` cannot take its name, or a body renaming would
    reach defines either name itself (`shadowed`)."""
    if shadowed(graph, out, src):
        return False
    if not graph.is_graph_output(out):
        return True
    producer = graph.producer_node(src)
    return (
        producer is not None
        and producer.op_type != "Constant"
        and not graph.is_graph_output(src)
        and not graph.is_graph_input(src)
        and src not in graph.initializers
    )


def shadowed(graph: Graph, old: str, new: str) -> bool:
    """Whether an If/Loop/Scan body reading `old` or `new` defines `old` or `new` itself (an
    initializer, input or node output of the same name, which onnx's checker accepts): the
    rename `old` → `new` (`Graph.replace_all_uses`, whose graph-output case renames `new` to
    `old`) renames every read in a body, so a body's own tensor would be read for the outer
    one, or the other way round."""
    readers = [n for t in (old, new) for n in graph.consumer_nodes(t) if graph.has_subgraphs(n)]
    return any({old, new} & scope_names(body) for node in readers for body in subgraphs(node))


def bypass(graph: Graph, node: onnx.NodeProto, src: str, out: str) -> None:
    """Readers of `out` (an output of `node`) read `src`; `node` is removed. A quantization
    annotation of the name that goes (`out`; `src` where `out` is a graph output, whose name
    `src`'s producer takes) names the one that stays (`Graph.replace_all_uses` with
    `same_values`: `out` = `src`); one dropped instead is said at debug level."""
    dropped = graph.replace_all_uses(out, src, same_values=True)
    graph.remove_node(node)
    if dropped:
        log.debug(dropped)


def _ints(value: np.ndarray | None, ranks: tuple[int, ...] = (1,)) -> list[int] | None:
    """The integers of a parameter input (axes, pads, repeats, a shape), None when it is not a
    constant or not of a rank onnxruntime takes for it (`fold_kernels.PARAMETER_RANKS`: 1-D,
    where a 2-D one is refused)."""
    if value is None or value.ndim not in ranks:
        return None
    return [int(v) for v in value.reshape(-1)]


MAX_IDENTITY_CONSTANT = 4096


def _elements(graph: Graph, tensor: str) -> int:
    init = graph.initializers.get(tensor)
    return 0 if init is None else math.prod(init.dims)


def _all_equal(value: np.ndarray, element: float) -> bool:
    return value.size > 0 and bool(np.all(value == element))


def _keeps_signed_zero(op: str, zeros: np.ndarray) -> bool:
    """Whether x + zeros (x − zeros) is x for x = −0.0 too: −0 + (+0) = +0 and
    −0 − (−0) = +0 in IEEE arithmetic, so only x + (−0) and x − (+0) are exact (as compilers
    without fast-math fold them); the sign of a zero shows in 1/x, Atan, a Div by it. Mul and
    Div by 1 are exact for every x."""
    if op == "Add":
        return bool(np.all(np.signbit(zeros)))
    if op == "Sub":
        return not bool(np.any(np.signbit(zeros)))
    return True


_SIGNED_ZERO_REASON = {
    "Add": "x + 0.0 turns x = -0.0 into +0.0 (only x + (-0.0) is x)",
    "Sub": "x - (-0.0) turns x = -0.0 into +0.0 (only x - 0.0 is x)",
}


def _broadcast_keeps_shape(const: np.ndarray, shapes: LazyShapes, x: str) -> bool:
    """True when broadcasting `const` against `x` leaves x's shape as it is."""
    if const.ndim == 0:
        return True
    dims = shapes.shape(x)
    if dims is None or len(dims) < const.ndim:
        return False
    tail = dims[len(dims) - const.ndim :]
    return all(
        c == 1 or (isinstance(d, int) and c == d) for c, d in zip(const.shape, tail, strict=True)
    )


NAN_BITS_AROUND = "nan-bits-observable-around"
"""`ctx.lasting_facts` key in a body's context (`graphopt.subgraphs`): whether the graphs
around the body read a NaN's bits (`nan_bits_observable` of its owner's graph, which looks into
every body of that graph). It holds while the body's pipeline runs: that graph waits."""


def nan_bits_observable(graph: Graph, ctx: PassContext) -> bool:
    """Whether a NaN's bits may reach a model output as an integer: the opset is 26 or newer and
    the model holds a BitCast (its graph, an If/Loop/Scan body, a local function: `every_node`;
    for a body, the graphs around it, as its context was told: `NAN_BITS_AROUND`, and where it
    was told nothing, yes). Then x·1, x + (−0.0), Sum(x), ... are not no-ops: bypassing them
    keeps bits onnxruntime replaces (measured, 1.32.0: x·1, x/1, x + (−0.0), x − 0.0, Sum(x),
    Mean(x) and Dropout(x) of float16 give its default NaN 0x7e00/0xfe00 for 0x7c01; of float32
    they quiet a signalling NaN, 0x7f800001 → 0x7fc00001)."""
    if graph.opset_version("") < NAN_BITS_READABLE_FROM:
        return False
    if ctx.in_body and ctx.lasting_facts.get(NAN_BITS_AROUND, True):
        return True
    return any(n.op_type == "BitCast" and is_default_domain(n) for n in every_node(graph))


_NAN_BITS_REASON = (
    "a BitCast reads a NaN's bits here (opset 26+), which onnxruntime's arithmetic changes "
    "(a float16 NaN becomes its default NaN, a signalling float32 NaN a quiet one)"
)


_TWO_INPUTS = frozenset({"Tile", "Expand", "Reshape"})
"""Ops whose rule reads input 1, which the spec requires (a model without it, which loading
lets pass, was an IndexError out of the pass)."""


IDENTITY_ELEMENT = {
    "Add": (0.0, (0, 1)),
    "Mul": (1.0, (0, 1)),
    "Sub": (0.0, (1,)),
    "Div": (1.0, (1,)),
}
"""op → (identity element, input positions the constant may occupy)."""


@dataclass
class _Rules:
    graph: Graph
    ctx: PassContext
    shapes: LazyShapes
    rule: str
    _nan_bits: bool | None = None

    def nan_bits_observable(self) -> bool:
        if self._nan_bits is None:
            self._nan_bits = nan_bits_observable(self.graph, self.ctx)
        return self._nan_bits

    def refuse(self, node: onnx.NodeProto, reason: str) -> str | None:
        self.ctx.note(self.rule, node.name, "refused", reason)
        return None

    def source(self, node: onnx.NodeProto) -> str | None:
        """The input that `node`'s (first) output equals, or None when not a no-op."""
        method = getattr(self, f"_{node.op_type.lower()}", None)
        if method is None:
            return None
        if node.op_type in _TWO_INPUTS and len(node.input) < 2:
            return self.refuse(node, "its second input is missing (the model is invalid)")
        mismatch = schema_mismatch(node, self.graph.opset_version(""))
        if mismatch is not None:  # (a rule would read it under another version's meaning)
            return self.refuse(node, mismatch)
        return method(node)

    # -- rules: each returns the tensor the node's output equals, or None
    def _identity(self, node: onnx.NodeProto) -> str | None:
        return node.input[0]

    def _dropout(self, node: onnx.NodeProto) -> str | None:
        g = self.graph
        if self.nan_bits_observable():
            return self.refuse(node, _NAN_BITS_REASON)
        if len(node.output) > 1 and node.output[1] and g.use_count(node.output[1]):
            return self.refuse(node, "its mask output is used")
        opset = g.opset_version("")
        if opset < 7 and not g.attr(node, "is_test", 0):
            return self.refuse(node, "is_test=0 (training mode)")
        if opset >= 12 and len(node.input) > 1 and node.input[1]:
            ratio = g.constant(node.input[1])
            if ratio is not None and (ratio.ndim != 0 or not 0 <= float(ratio) < 1):
                # (onnxruntime rejects the model, or fails running it: nothing to keep)
                return self.refuse(node, "ratio is not a scalar in [0, 1)")
        if opset >= 12 and len(node.input) > 2 and node.input[2]:
            mode = g.constant(node.input[2])
            if mode is None:
                return self.refuse(node, "training_mode is not a constant")
            if mode.ndim != 0:  # (an empty one was an IndexError; onnxruntime rejects both)
                return self.refuse(node, "training_mode is not a scalar")
            if bool(mode):
                return self.refuse(node, "training_mode is true")
        return node.input[0]

    def _cast(self, node: onnx.NodeProto) -> str | None:
        to = self.graph.attr(node, "to")
        if self.shapes.dtype(node.input[0]) != to:
            return None
        if not saturate_allowed(to, self.graph.attr(node, "saturate", 1)):
            return self.refuse(node, "saturate=0 on a Cast to no float8 type (onnxruntime refuses)")
        return node.input[0]

    def _transpose(self, node: onnx.NodeProto) -> str | None:
        perm = self.graph.attr(node, "perm")
        if perm is None:
            rank = self.shapes.rank(node.input[0])
            return node.input[0] if rank is not None and rank <= 1 else None
        if list(perm) != list(range(len(perm))):
            return None
        if self.shapes.rank(node.input[0]) != len(perm):
            # a perm of another length than the rank (or a rank not known): onnxruntime
            # refuses the node, the bypass would make a model that runs
            return self.refuse(node, "perm's length is not the input's known rank")
        return node.input[0]

    def _pad(self, node: onnx.NodeProto) -> str | None:
        g = self.graph
        if g.opset_version("") < 11:
            pads = g.attr(node, "pads")
        else:
            pads = _ints(g.constant(node.input[1])) if len(node.input) > 1 else None
        if pads is None or any(pads):
            return None
        axes: list[int] | None = None
        if len(node.input) > 3 and node.input[3]:
            axes = _ints(g.constant(node.input[3]))
            if axes is None:
                return None
        rank = self.shapes.rank(node.input[0])
        if rank is None or len(pads) != 2 * (rank if axes is None else len(axes)):
            return self.refuse(node, "pads do not fit the input's known rank")
        if not self._axes_within(axes or [], rank):
            # (onnxruntime refuses such a Pad: bypassed, the model would run)
            return self.refuse(node, "axes are not within the input's known rank")
        return node.input[0]

    @staticmethod
    def _axes_within(axes: list[int], rank: int) -> bool:
        return all(-rank <= a < rank for a in axes)

    def _one_input(self, node: onnx.NodeProto) -> str | None:
        return node.input[0] if len(node.input) == 1 else None

    _max = _min = _one_input  # variadic ops of one input return it (onnxruntime copies x)

    def _concat(self, node: onnx.NodeProto) -> str | None:
        if len(node.input) != 1:
            return None
        rank = self.shapes.rank(node.input[0])
        if rank is None or not self._axes_within([self.graph.attr(node, "axis", 0)], rank):
            return self.refuse(node, "axis is not within the input's known rank")
        return node.input[0]

    def _sum(self, node: onnx.NodeProto) -> str | None:
        if len(node.input) == 1 and self.nan_bits_observable():
            return self.refuse(node, _NAN_BITS_REASON)  # onnxruntime computes x + 0 there
        return self._one_input(node)

    _mean = _sum

    def _split(self, node: onnx.NodeProto) -> str | None:
        if len(node.output) != 1:
            return None
        g = self.graph
        split = g.attr(node, "split")
        if split is None and len(node.input) > 1 and node.input[1]:
            split = _ints(g.constant(node.input[1]))
            if split is None:
                return None
        if split is not None and len(split) != 1:
            return None
        parts = g.attr(node, "num_outputs")
        if g.opset_version("") >= 18 and (
            (split is None) == (parts is None) or parts not in (None, 1)
        ):
            # Split-18 takes split or num_outputs (the count of its outputs), not both
            return self.refuse(node, "not one of split and num_outputs=1 (opset 18+)")
        x = node.input[0]
        rank = self.shapes.rank(x)
        axis = g.attr(node, "axis", 0)
        if rank is None or not self._axes_within([axis], rank):
            return self.refuse(node, "axis is not within the input's known rank")
        if split is not None:
            dims = self.shapes.shape(x)
            if dims is None or dims[axis] != split[0]:
                return self.refuse(node, "split is not the length of the axis")
        return x

    def _tile(self, node: onnx.NodeProto) -> str | None:
        repeats = _ints(self.graph.constant(node.input[1]))
        if repeats is None or not all(r == 1 for r in repeats):
            return None
        if self.shapes.rank(node.input[0]) != len(repeats):
            return self.refuse(node, "repeats' length is not the input's known rank")
        if not repeats:  # (onnxruntime 1.23 refuses a Tile of a 0-d tensor, 1.32 runs it)
            return self.refuse(node, "a Tile of a 0-d tensor (onnxruntime versions disagree)")
        return node.input[0]

    def _expand(self, node: onnx.NodeProto) -> str | None:
        if self._whole_shape_of(node.input[1], node.input[0]):
            return node.input[0]  # Expand(x, Shape(x)) = x, whatever x's dims
        shape = _ints(self.graph.constant(node.input[1]))
        if shape is None:
            return None
        dims = self.shapes.shape(node.input[0])
        if dims is None or len(shape) > len(dims):
            return None
        tail = dims[len(dims) - len(shape) :]
        if all(s == 1 or (isinstance(d, int) and d == s) for s, d in zip(shape, tail, strict=True)):
            return node.input[0]
        return None

    def _whole_shape_of(self, tensor: str, x: str) -> bool:
        """Whether `tensor` is Shape(x) over all of x's dims (no start or end past 0)."""
        producer = self.graph.producer_node(tensor)
        if producer is None or producer.op_type != "Shape" or not is_default_domain(producer):
            return False
        if producer.input[0] != x:
            return False
        ends = [a for a in producer.attribute if a.name == "end"]
        return self.graph.attr(producer, "start", 0) == 0 and not ends

    def _reshape(self, node: onnx.NodeProto) -> str | None:
        if self._whole_shape_of(node.input[1], node.input[0]):
            return node.input[0]  # Reshape(x, Shape(x)) = x: a 0 in it copies a 0 either way
        target = _ints(self.graph.constant(node.input[1]))
        if target is None:
            return None
        rank = self.shapes.local_rank(node.input[0])
        if rank is not None and rank != len(target):
            return None  # refuted without shape inference
        dims = self.shapes.shape(node.input[0])
        if dims is None or len(dims) != len(target):
            return None
        allowzero = self.graph.attr(node, "allowzero", 0)
        if zero_and_inferred_dim(target, allowzero):
            return self.refuse(node, "allowzero with both a 0 and a -1 in the shape (invalid)")
        inferred = 0
        for s, d in zip(target, dims, strict=True):
            if s == 0 and not allowzero:
                continue  # copies the input dim
            if s == -1:
                inferred += 1  # equals d when every other dim matches
            elif not (isinstance(d, int) and d == s):
                return None
        if inferred > 1:
            return None
        if inferred and any(d == 0 for s, d in zip(target, dims, strict=True) if s != -1):
            # the -1 of a shape whose other dims hold a 0 has no value: onnxruntime refuses
            # Reshape([0, 3] → [0, -1]); bypassed, the model would run
            return self.refuse(node, "a -1 beside a dim of 0 (onnxruntime cannot infer it)")
        return node.input[0]

    def _flatten(self, node: onnx.NodeProto) -> str | None:
        rank = self.shapes.rank(node.input[0])
        axis = self.graph.attr(node, "axis", 1)
        return node.input[0] if rank == 2 and axis in (1, -1) else None

    def _squeeze(self, node: onnx.NodeProto) -> str | None:
        g = self.graph
        if g.opset_version("") < 13:
            axes = g.attr(node, "axes")
        elif len(node.input) > 1 and node.input[1]:
            axes = _ints(g.constant(node.input[1]))
            if axes is None:
                return None
        else:
            axes = None
        if axes:  # empty axes: onnxruntime squeezes every dim of 1, as when none are given
            return None
        static = self.shapes.static(node.input[0])
        return node.input[0] if static is not None and 1 not in static else None

    def _unsqueeze(self, node: onnx.NodeProto) -> str | None:
        g = self.graph
        if g.opset_version("") < 13:
            axes = g.attr(node, "axes")
        else:
            axes = _ints(g.constant(node.input[1]), (0, 1)) if len(node.input) > 1 else None
        return node.input[0] if axes is not None and len(axes) == 0 else None

    def _slice(self, node: onnx.NodeProto) -> str | None:
        from graphopt.analysis.fold_kernels import node_slice_parameters

        g = self.graph
        params = node_slice_parameters(node, g.constant, g.opset_version(""))
        if params is None:
            return None
        starts, ends, axes, steps = params
        if any(s != 1 for s in steps):
            return None
        rank = self.shapes.rank(node.input[0])
        if rank is None or not self._axes_within(axes, rank) or len(set(axes)) != len(axes):
            return self.refuse(node, "axes are not distinct axes of the input's known rank")
        dims = None
        for start, end, axis in zip(starts, ends, axes, strict=True):
            needs_dims = axis < 0 or start < 0 or end < UNBOUNDED
            if needs_dims and dims is None:
                dims = self.shapes.shape(node.input[0])
                if dims is None:
                    return None
            if dims is not None:
                if not -len(dims) <= axis < len(dims):
                    return None
                d = dims[axis]
            else:
                d = None
            if start != 0 and not (start < 0 and isinstance(d, int) and start <= -d):
                return None
            if end < UNBOUNDED and not (isinstance(d, int) and end >= d):
                return None
        return node.input[0]

    def _arithmetic(self, node: onnx.NodeProto) -> str | None:
        element, positions = IDENTITY_ELEMENT[node.op_type]
        g = self.graph
        if g.opset_version("") < 7 or len(node.input) != 2:
            return None
        for pos in positions:
            if _elements(g, node.input[pos]) > MAX_IDENTITY_CONSTANT:
                continue  # an all-ones/zeros weight this big is not worth decoding to find out
            const = g.constant(node.input[pos])
            if const is None or const.dtype == np.bool_ or not _all_equal(const, element):
                continue
            # (bfloat16 and the float8s decode to ml_dtypes types, numpy kind "V")
            floating = const.dtype.kind in "fc" or "float" in const.dtype.name
            if floating and not _keeps_signed_zero(node.op_type, const):
                return self.refuse(node, _SIGNED_ZERO_REASON[node.op_type])
            if floating and self.nan_bits_observable():
                return self.refuse(node, _NAN_BITS_REASON)
            x = node.input[1 - pos]
            if g.is_constant(x):
                return None  # left to constant folding
            if not _broadcast_keeps_shape(const, self.shapes, x):
                return self.refuse(node, "broadcasting the constant would change the shape")
            return x
        return None

    _add = _mul = _sub = _div = _arithmetic


NOOP_OPS: frozenset[str] = frozenset(
    {
        "Identity",
        "Dropout",
        "Cast",
        "Transpose",
        "Pad",
        "Concat",
        "Sum",
        "Mean",
        "Max",
        "Min",
        "Split",
        "Tile",
        "Expand",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Slice",
        "Add",
        "Mul",
        "Sub",
        "Div",
    }
)


@register_pass
@dataclass
class EliminateNoops(Pass):
    """Bypass nodes proven to return their input unchanged.

    Identity(x), Dropout(x) (inference, mask unused), Cast(x: T, to=T), Transpose(x, perm=id),
    Pad(x, pads=0), Concat(x), Sum/Mean/Max/Min(x), Split(x) into one part, Tile(x, 1…1), Expand/Reshape/Flatten/
    Squeeze/Unsqueeze/Slice whose output shape equals the input's (static shapes),
    x+0, 0+x, x−0, x·1, 1·x, x/1 (when the constant's broadcast keeps x's shape)  ⇒  x
    (for floating-point x, the zero added is −0.0 and the zero subtracted +0.0: x + (+0.0) is
    +0.0 at x = −0.0)
    """

    name = "eliminate-noops"
    opt_level = 1
    # Only these ops (empty: all of the above). `[Identity, Dropout]` before the fusions is a
    # scan of op types where there are none, and lets a rule see through exporters' Identity
    # chains (paddle2onnx: ConvTranspose → Identity → Add) in the same run.
    only: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.only) - NOOP_OPS)
        if unknown:
            raise ValueError(f"only: {unknown[0]!r} is none of {', '.join(sorted(NOOP_OPS))}")

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        rules = _Rules(graph, ctx, LazyShapes(graph, ctx), self.name)
        removed: dict[str, int] = {}
        ops = NOOP_OPS.intersection(self.only) if self.only else NOOP_OPS
        for node in list(graph.nodes.values()):
            if node.op_type not in ops or not is_default_domain(node):
                continue
            if node.name not in graph.nodes or not node.input or not node.input[0]:
                continue
            src = rules.source(node)
            if src is None:
                continue
            out = node.output[0]
            if not can_bypass(graph, src, out):
                ctx.note(
                    self.name, node.name, "refused", f"graph output {out!r} must keep its name"
                )
                continue
            bypass(graph, node, src, out)
            ctx.note(self.name, node.name, "applied")
            removed[node.op_type] = removed.get(node.op_type, 0) + 1
        return PassResult(bool(removed), {"removed": sum(removed.values()), **removed})
