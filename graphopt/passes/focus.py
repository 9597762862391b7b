"""YOLOX / YOLOv5's Focus layer as one SpaceToDepth.

Focus cuts the image into its four 2×2 phases and stacks them on channels:
`Concat(x[:, :, dy::2, dx::2] for four distinct (dy, dx), axis=1)`, exported as four Slices of
one tensor (each on both spatial axes, or a Slice of a Slice). `SpaceToDepth(x, blocksize=2)`
computes the same four blocks in the order (0,0), (0,1), (1,0), (1,1): block dy·2 + dx holds
x[:, :, dy::2, dx::2]. Five nodes (nine as exported) become one; onnxruntime does the same at
session time (as SpaceToDepth + Gather), TensorRT and `ORT_DISABLE_ALL` get it ahead of time.

What it does not do: block sizes other than 2, channels-last layouts, tensors other than float
and double (onnxruntime has no SpaceToDepth kernel for int32, int64 or bool), or a Focus whose
block order differs from SpaceToDepth's and whose Concat feeds anything but one Conv (a Gather
to reorder the channels would cost about what the Concat did), nor a Focus of an input whose
height and width are not known to be even (on an empty one of odd dims the Focus runs,
SpaceToDepth fails).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from graphopt.ir import Graph
from graphopt.ir.values import declared_dims
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import initializers_allowed, is_default_domain
from graphopt.passes.layout import constant_slice_params
from graphopt.passes.noop import LazyShapes

SPATIAL_AXES = (2, 3)
# Element types every onnxruntime release's CPU SpaceToDepth takes (opset 1-12 kernels register
# float and double only; newer releases add a few 8/16-bit types, none int32, int64 or bool)
S2D_DTYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE})
UNBOUNDED_END = 2**31 - 1  # an end at least this large keeps every row of any real image


@dataclass
class _Block:
    """One Concat input: x[:, :, dy::2, dx::2] computed by `slices` (outermost first)."""

    source: str
    dy: int
    dx: int
    slices: list[onnx.NodeProto]


def _block(graph: Graph, tensor: str, shapes: LazyShapes) -> _Block | str:
    """The Focus block `tensor` is, or why it is not one."""
    slices: list[onnx.NodeProto] = []
    cuts: dict[int, tuple[int, int, int]] = {}  # axis -> (start, end, step)
    current = tensor
    while len(slices) < 2:
        node = _slice_producer(graph, current)
        if node is None:
            break
        source = node.input[0]
        if shapes.rank(source) != 4:
            return f"{source} is not known to have rank 4"
        params = constant_slice_params(graph, node, 4)
        if params is None:
            return f"{node.name}'s parameters are not constant"
        for start, end, axis, step in zip(*(p.tolist() for p in params), strict=True):
            if axis in cuts:
                return f"{node.name} cuts axis {axis} twice"
            cuts[axis] = (start, end, step)
        slices.append(node)
        current = source
    if not slices:
        return f"{tensor} is not made by a Slice"
    if set(cuts) != set(SPATIAL_AXES):
        return f"the slices cut axes {sorted(cuts)}, not [2, 3]"
    phases = []
    for axis in SPATIAL_AXES:
        start, end, step = cuts[axis]
        # the input's static dims only when needed: they may cost a shape inference
        whole = end >= UNBOUNDED_END or _static_dim(shapes, current, axis) <= end
        if step != 2 or start not in (0, 1) or not whole:
            return f"axis {axis} is cut as {start}:{end}:{step}, not 0::2 or 1::2"
        phases.append(start)
    return _Block(current, phases[0], phases[1], slices)


def _slice_producer(graph: Graph, tensor: str) -> onnx.NodeProto | None:
    """The standard Slice that writes `tensor`, if one does."""
    node = graph.producer_node(tensor)
    if node is None or node.op_type != "Slice" or not is_default_domain(node):
        return None
    return node


def _static_dim(shapes: LazyShapes, tensor: str, axis: int) -> float:
    """Dim `axis` of `tensor` when it is static, else infinity."""
    dims = shapes.static(tensor)
    return float("inf") if dims is None else dims[axis]


def _even_height_and_width(shapes: LazyShapes, tensor: str) -> bool:
    """`tensor`'s dims 2 and 3 are known and even. SpaceToDepth fails on an odd one; the Focus
    fails too while `tensor` holds elements (its blocks' odd dims differ by one), but not on
    an empty `tensor` (batch 0: onnxruntime's Concat skips empty inputs), which it runs. A
    graph input's dims as declared (runtimes refuse a feed of others; no inference)."""
    graph = shapes.graph
    declared = next((vi for vi in graph.proto.input if vi.name == tensor), None)
    if declared is not None and tensor not in graph.initializers:
        dims: tuple[int | str | None, ...] | None = declared_dims(declared, symbolic=False)
    else:
        dims = shapes.shape(tensor)
    spatial = dims[2:4] if dims is not None and len(dims) == 4 else ()
    return len(spatial) == 2 and all(isinstance(d, int) and d % 2 == 0 for d in spatial)


def _conv_reading(graph: Graph, tensor: str) -> onnx.NodeProto | None:
    """The one Conv (group 1, constant weight) that is `tensor`'s only reader, as its data."""
    readers = graph.consumer_nodes(tensor)
    if len(readers) != 1 or graph.is_graph_output(tensor):
        return None
    conv = readers[0]
    if conv.op_type != "Conv" or not is_default_domain(conv) or len(conv.input) < 2:
        return None
    if conv.input[0] != tensor or int(graph.attr(conv, "group", 1)) != 1:
        return None
    return conv if graph.is_constant(conv.input[1]) else None


@register_pass
@dataclass
class FocusToSpaceToDepth(Pass):
    """Replace a Focus layer (four strided 2×2-phase Slices of x joined on channels) by
    SpaceToDepth.

    Concat_k(x[:, :, dy_k::2, dx_k::2]; axis=1)  ⇒  SpaceToDepth(x; 2)   if b_k = 2·dy_k + dx_k = k
    Conv(Concat_k(...), W)  ⇒  Conv(SpaceToDepth(x; 2), W')   W'[:, b_k·C + c] = W[:, k·C + c]
    for any other order, when the Concat's only reader is a Conv (group 1, constant W).
    Every sliced intermediate must be read only by the Focus's own slices.
    """

    name = "focus-to-space-to-depth"
    opt_level = 1

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        concats = [
            n
            for n in graph.nodes.values()
            if n.op_type == "Concat" and is_default_domain(n) and len(n.input) == 4
        ]
        if not concats:
            return PassResult(False)
        shapes = LazyShapes(graph, ctx)
        replaced = 0
        for concat in concats:
            reason = self._rewrite(graph, ctx, concat, shapes)
            if reason:
                ctx.note(self.name, concat.name, "refused", reason)
            else:
                ctx.note(self.name, concat.name, "applied")
                replaced += 1
        return PassResult(replaced > 0, {"replaced": replaced})

    def _rewrite(
        self, graph: Graph, ctx: PassContext, concat: onnx.NodeProto, shapes: LazyShapes
    ) -> str:
        """Rewrite one Concat; the reason it was left alone ("" when rewritten)."""
        out = concat.output[0]
        axis = int(graph.attr(concat, "axis", 0))
        if axis not in (1, -3):
            return "not a Concat on the channel axis"
        if any(_slice_producer(graph, t) is None for t in concat.input):
            return "not every input is made by a Slice"  # before any rank: ranks may infer
        if any(graph.is_graph_output(t) for t in concat.input):
            return "a sliced tensor is a graph output"
        blocks = []
        for tensor in concat.input:
            found = _block(graph, tensor, shapes)
            if isinstance(found, str):
                return found
            blocks.append(found)
        if len({b.source for b in blocks}) != 1:
            return "the slices read different tensors"
        if shapes.dtype(blocks[0].source) not in S2D_DTYPES:
            return f"{blocks[0].source} is not known to be float or double (SpaceToDepth's kernels)"
        if not _even_height_and_width(shapes, blocks[0].source):
            return (
                f"{blocks[0].source}'s height and width are not known to be even (an empty "
                "one of odd dims runs the Focus: onnxruntime's Concat skips empty inputs)"
            )
        order = [2 * b.dy + b.dx for b in blocks]
        if sorted(order) != [0, 1, 2, 3]:
            return f"the blocks {[(b.dy, b.dx) for b in blocks]} are not the four 2×2 phases"
        sliced = {n.name for b in blocks for n in b.slices}
        for b in blocks:
            for inner in b.slices[1:]:
                t = inner.output[0]
                if graph.is_graph_output(t) or not set(graph.consumers.get(t, ())) <= sliced:
                    return f"{t} is also read outside the Focus"
        for b in blocks:
            if len(graph.consumers.get(b.slices[0].output[0], ())) != 1:
                return f"{b.slices[0].output[0]} is also read outside the Focus"
        conv, weight = None, None
        if order != [0, 1, 2, 3]:
            conv = _conv_reading(graph, out)
            if conv is None:
                return "the block order differs from SpaceToDepth's and no Conv alone reads it"
            if not initializers_allowed(graph, ctx, self.name):
                return "initializers are not allowed here"
            weight = graph.constant(conv.input[1])
            if weight is None or weight.ndim < 2 or weight.shape[1] % 4:
                return f"{conv.name}'s weight does not have 4·C input channels"
        source = blocks[0].source
        graph.remove_node(concat)
        for name in dict.fromkeys(n.name for b in blocks for n in b.slices):
            if name in graph.nodes:
                graph.remove_node(name)
        node = onnx.helper.make_node(
            "SpaceToDepth", [source], [out], name=graph.unique_name(f"{concat.name}_s2d"),
            blocksize=2,
        )  # fmt: skip
        graph.add_node(node)
        if conv is not None and weight is not None:
            graph.set_input(conv, 1, _permuted_weight(graph, conv.input[1], weight, order))
        return ""


def _permuted_weight(graph: Graph, name: str, weight: np.ndarray, order: list[int]) -> str:
    """A copy of Conv weight `name` (value `weight`) whose input channels follow SpaceToDepth's
    block order: W'[:, b_k·C + c] = W[:, k·C + c]."""
    c = weight.shape[1] // 4
    source = np.empty(weight.shape[1], np.int64)  # new channel -> old channel
    for k, b in enumerate(order):
        source[b * c : (b + 1) * c] = np.arange(k * c, (k + 1) * c)
    return graph.add_initializer(f"{name}_s2d", np.take(weight, source, axis=1))
