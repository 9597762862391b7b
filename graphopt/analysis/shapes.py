"""Shape and dtype facts for every tensor of a graph, from one run of ONNX shape inference.

`shape_facts(graph)` runs `onnx.shape_inference.infer_shapes` once (strict mode off, data
propagation on) over a lightweight copy of the model: nodes in topological order, with every
large constant (initializer or `Constant` node) replaced by a graph input of the same dtype and
shape, so no weight bytes are copied or serialized. Small constants (≤ 64 elements, or integer
tensors ≤ 4096 elements) are kept so that Reshape targets and shape arithmetic still infer.
Declared graph input shapes feed the inference too (outputs' and value_info's only their element
types, and in If/Loop/Scan bodies inputs' too, but for a Loop's iteration number and condition:
`light_model`). When a `PassContext` is
given the result is cached in `ctx.facts["shapes"]` (the pass manager clears it whenever a pass
changes the graph).

What it does not do: it never mutates the graph, infers nothing inside subgraphs beyond what
ONNX does, and never fails: where inference gives up, the facts say "unknown" (None).
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import numpy_helper

from graphopt.analysis.inference_aborts import guarded_inference, is_short_split, onnx_inference
from graphopt.analysis.runtime_shapes import inference_cuts
from graphopt.analysis.usedef import skeleton_copy, small_constant
from graphopt.ir import Graph
from graphopt.ir.io_names import as_text
from graphopt.ir.model_io import check_nested
from graphopt.ir.nodes import constant_tensor, is_default_domain, mistyped_constant, subgraphs
from graphopt.ir.values import declared_dims

if TYPE_CHECKING:  # (analysis does not import the pass layer at run time)
    from graphopt.passes.base import PassContext

log = logging.getLogger("graphopt.analysis.shapes")

Dim = int | str | None
Shape = tuple[Dim, ...]

_FACTS_KEY = "shapes"


@dataclass
class ShapeFacts:
    """Per tensor name: element type (TensorProto enum) and shape.

    A shape is a tuple whose entries are ints (known), strs (symbolic, e.g. "batch") or None
    (unknown); the whole shape is None when even the rank is unknown.
    """

    dtypes: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, Shape | None] = field(default_factory=dict)
    # tensors that were constants (initializers, Constant nodes) when these facts were inferred
    constants: set[str] = field(default_factory=set)
    # Value infos not read yet, per tensor (in the order `record` would have taken them):
    # decoding every one costs more than inference itself, and passes ask about few tensors.
    _pending: dict[str, list[onnx.ValueInfoProto]] = field(default_factory=dict, repr=False)
    # outputs of the nodes whose dims ONNX inference (the checker's, onnxruntime's loader's)
    # counts otherwise than onnxruntime computes them, as the first inference found them (a
    # ceil_mode pool's last window: `runtime_shapes.inference_cuts`); these facts hold
    # onnxruntime's dims there (`graphopt.passes.noop.dims_inference_counts_apart`)
    apart_roots: frozenset[str] = field(default_factory=frozenset)  # (no class attribute:
    # `graphopt.subgraphs._FactsOnDemand` fills its fields on first access)
    # (node, input index) where a node read, where values set its output's shape
    # (`_SHAPE_OPERANDS`), a tensor that was no constant when these facts were inferred
    value_reads: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    def __contains__(self, name: str) -> bool:
        self._settle(name)
        return name in self.dtypes or name in self.shapes

    def knows(self, name: str) -> bool:
        """True when a shape entry (perhaps "unknown") exists for `name`."""
        return name in self.shapes or name in self._pending

    def shape(self, name: str) -> Shape | None:
        self._settle(name)
        return self.shapes.get(name)

    def dtype(self, name: str) -> int | None:
        self._settle(name)
        return self.dtypes.get(name)

    def rank(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else len(s)

    def is_static(self, name: str) -> bool:
        """True when every dimension of `name` is a known integer."""
        s = self.shape(name)
        return s is not None and all(isinstance(d, int) for d in s)

    def size(self, name: str) -> int | None:
        """Number of elements when the shape is static, else None."""
        s = self.shape(name)
        if s is None or not all(isinstance(d, int) for d in s):
            return None
        return prod(d for d in s if isinstance(d, int))

    def record(self, vi: onnx.ValueInfoProto) -> None:
        """Take what `vi` says about a tensor (known facts are never replaced by unknowns)."""
        if vi.type.WhichOneof("value") != "tensor_type":
            return
        tt = vi.type.tensor_type
        name = vi.name
        if tt.elem_type:
            self.dtypes[name] = tt.elem_type
        new = declared_dims(vi)
        if new is None:
            self.shapes.setdefault(name, None)
            return
        old = self.shapes.get(name)
        if old is None or _known_count(new) >= _known_count(old):
            self.shapes[name] = new

    def defer(self, vi: onnx.ValueInfoProto) -> None:
        """`record(vi)` when `vi`'s tensor is first asked about."""
        if vi.type.HasField("tensor_type"):
            self._pending.setdefault(vi.name, []).append(vi)

    def _settle(self, name: str) -> None:
        if self._pending:
            waiting = self._pending.pop(name, None)
            if waiting is not None:
                for vi in waiting:
                    self.record(vi)

    def record_tensor(self, name: str, t: onnx.TensorProto) -> None:
        """Facts of a constant: its dtype and dims."""
        self.dtypes[name] = t.data_type
        self.shapes[name] = tuple(t.dims)
        self.constants.add(name)


def _known_count(shape: Shape) -> int:
    return len(shape) - sum(not isinstance(d, int) for d in shape)


def shape_facts(graph: Graph | onnx.ModelProto, ctx: PassContext | None = None) -> ShapeFacts:
    """Shapes and dtypes of every tensor of `graph` (cached in `ctx.facts` when given)."""
    if ctx is not None:
        cached = ctx.facts.get(_FACTS_KEY)
        if isinstance(cached, ShapeFacts):
            return cached
    if isinstance(graph, onnx.ModelProto):  # (a node leaving out a required input, in a
        check_nested(graph, "the given ModelProto")  # body too, crashed inference)
        graph = Graph(skeleton_copy(graph))
    earlier = ctx.lasting_facts.get(_FACTS_KEY) if ctx is not None else None
    if isinstance(earlier, ShapeFacts) and _covers(earlier, graph):
        # Rewrites keep the value (so the shape) of every tensor that keeps its name: facts
        # from before the last change still hold when they cover every tensor there is now.
        facts = earlier
    else:
        facts = _infer(graph)
    if ctx is not None:
        ctx.facts[_FACTS_KEY] = facts
        ctx.lasting_facts[_FACTS_KEY] = facts
    return facts


def share_shape_facts(ctx: PassContext, facts: ShapeFacts) -> None:
    """Make `facts` what `shape_facts(graph, ctx)` answers, as if it had inferred them: for a
    caller that inferred them over the very model `ctx`'s passes will run on (a Loop body's,
    `graphopt.subgraphs`), so that inference is not run twice. A pass that changes the graph
    clears them as it clears any (`PassContext.invalidate`)."""
    ctx.facts[_FACTS_KEY] = facts
    ctx.lasting_facts[_FACTS_KEY] = facts


def _covers(facts: ShapeFacts, graph: Graph) -> bool:
    """True when `facts` knows every tensor the graph defines now (inputs, constants, outputs)
    and no constant that is new since then feeds a node whose output shape they leave open: a
    tensor folded into a constant of the same name keeps its value, but what it feeds (a
    Reshape's output) may infer now, and reusing the facts would take another run of the
    pipeline to see it."""
    knows = facts.knows
    return (
        all(knows(name) for name in graph.producer)
        and all(knows(name) for name in graph.initializers)
        and all(knows(name) for name in graph.graph_inputs)
        and not any(_opens(facts, graph, name) for name in graph.initializers)
        and not any(_reads_a_constant_now(facts, graph, n, k) for n, k in facts.value_reads)
    )


def _reads_a_constant_now(facts: ShapeFacts, graph: Graph, name: str, k: int) -> bool:
    """Node `name` reads a constant now at input `k`, where values set its output's shape and
    it read none when `facts` were inferred, and they leave an output's dim unknown or
    symbolic: the constant may settle it. (A rewrite rewires readers onto constants of old
    names, which `_opens` does not look at: eliminate-noops taking Resize(x, , Dropout(c)) to
    Resize(x, , c) gives inference the scales, so it counts the output as it counts a
    Resize's, otherwise than onnxruntime where `runtime_shapes.inference_cuts` says.)"""
    node = graph.nodes.get(name)
    if node is None or k >= len(node.input) or not graph.is_constant(node.input[k]):
        return False
    for out in node.output:
        dims = facts.shape(out) if out else ()
        if dims is None or not all(isinstance(d, int) for d in dims):
            return True
    return False


# (op, input) pairs whose values, not only shapes, set the op's output shape: a constant that
# appears there can settle a symbolic output dim
_SHAPE_OPERANDS = frozenset(
    {("Pad", 1), ("Reshape", 1), ("Expand", 1), ("Tile", 1), ("Slice", 1), ("Slice", 2),
     ("Slice", 3), ("Slice", 4), ("Resize", 2), ("Resize", 3), ("Upsample", 1),
     ("ConstantOfShape", 0), ("Range", 0), ("Range", 1), ("Range", 2), ("Unsqueeze", 1),
     ("Squeeze", 1), ("TopK", 1), ("OneHot", 1)}
)  # fmt: skip


def _opens(facts: ShapeFacts, graph: Graph, name: str) -> bool:
    """`name` became a constant after `facts` were inferred and they leave a reader's output
    rank or a dim unknown, or symbolic where the constant may settle it: its dims say more
    than the facts had (a Gather by Range(0, N) that folded to [3, 5] where they said [N, 5]),
    or the reader reads its values as a shape, pads or bounds (torch's F.pad computes the
    pads at run time: folded, they fix the padded dims). A symbolic dim that depends on
    nothing new stays symbolic: no reason to infer again."""
    if name in facts.constants or graph.is_graph_input(name):
        return False
    init = graph.initializers.get(name)
    sharper = init is not None and facts.shape(name) != tuple(init.dims)
    for node in graph.consumer_nodes(name):
        settles = sharper or any(
            (node.op_type, k) in _SHAPE_OPERANDS for k, t in enumerate(node.input) if t == name
        )
        for out in node.output:
            dims = facts.shape(out) if out else ()
            if dims is None or any(d is None or (settles and isinstance(d, str)) for d in dims):
                return True
    return False


def _valueless(node: onnx.NodeProto) -> onnx.NodeProto:
    """A copy of `mistyped_constant` node `node` without its attributes: ONNX inference reads
    such a node's attribute by its name (`value_ints` given as FLOATS: an empty vector, so
    `Shape` of it folded to [0]), onnxruntime by its type ([3] for three floats); without a
    value inference gives up on the node, and its output's dtype and shape stay unknown."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    del copy.attribute[:]
    return copy


def _add_placeholder(inputs: Any, name: str, t: onnx.TensorProto) -> None:
    """Append to `inputs` what `make_tensor_value_info(name, t.data_type, t.dims)` makes."""
    vi = inputs.add()
    vi.name = name
    tt = vi.type.tensor_type
    tt.elem_type = t.data_type
    dims = tt.shape.dim
    dims.extend([])
    for d in t.dims:
        dims.add().dim_value = d


def light_model(graph: Graph, facts: ShapeFacts, declarations: bool = False) -> onnx.ModelProto:
    """The model to infer over (nodes in topological order, large constants as typed inputs:
    no weight bytes, a dim declared as -1 unknown, as `declared_dims` reads it); records in
    `facts` the constants it replaces by inputs.

    The graph inputs keep their declared shapes (runtimes refuse feeds of others). The shapes
    the model states for graph outputs and value_info come along only with `declarations`
    (their element types always): no runtime checks them, and an exporter's stale one (traced at
    batch 1, or a rank-0 output) would make a pass fold `Shape(y)` or drop a Reshape that the
    model needs.

    Nodes that onnx's inference reads apart from onnxruntime, or crashes on, are changed in
    this copy only: a Slice's disputed end becomes unknown (`_hide_disputed_slice_ends`), its
    huge steps clamped and its computed ones unknown (`_tame_slice_steps`, which also leaves
    out functions that could feed it huge ones), a Squeeze's empty axes go
    (`_drop_empty_squeeze_axes`), and so does a Split's `num_outputs` that is fewer than its
    outputs (`_drop_short_split_counts`)."""
    model = graph.model
    light = onnx.ModelProto()
    light.ir_version = max(model.ir_version, 4)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g = light.graph
    g.name = as_text(graph.proto.name) or "graph"  # (a flipped byte: bytes, not settable)
    declared_inputs = set(graph.graph_inputs)
    g.input.extend(graph.proto.input)
    for name, init in graph.initializers.items():
        if name in declared_inputs:
            continue  # an overridable default: its declared input type is what callers may feed
        facts.record_tensor(name, init)
        if small_constant(init):
            g.initializer.append(init)
        else:
            _add_placeholder(g.input, name, init)
    as_inputs = set(declared_inputs)
    kept = []
    for node in graph.toposort():  # the current order when it is topological
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            value = constant_tensor(node)
            if value is not None:
                facts.record_tensor(node.output[0], value)
                if not small_constant(value):
                    _add_placeholder(g.input, node.output[0], value)
                    as_inputs.add(node.output[0])
                    continue
            elif mistyped_constant(node.attribute):
                node = _valueless(node)
        kept.append(node)
    g.node.extend(kept)
    _hide_disputed_slice_ends(graph, g)  # (reads the steps as they are)
    _tame_slice_steps(graph, light)
    _drop_empty_squeeze_axes(graph, g)
    _drop_short_split_counts(light)
    g.output.extend(graph.proto.output)
    # a constant's value_info says nothing its tensor does not: without it (and cleared of
    # its shape, inference takes the value_info over the initializer's dims: torch dynamo
    # declares its weights there)
    g.value_info.extend(
        vi
        for vi in graph.proto.value_info
        if vi.name not in as_inputs and vi.name not in graph.initializers
    )
    if not declarations:
        for vi in itertools.chain(g.output, g.value_info):
            if vi.type.HasField("tensor_type"):
                vi.type.tensor_type.ClearField("shape")
        if graph.nodes_with_bodies():
            _body_types_only(g.node)  # the light model's copies of the nodes
    _negative_dims_unknown(itertools.chain(g.input, g.output, g.value_info))
    return light


def _negative_dims_unknown(infos: Iterable[onnx.ValueInfoProto]) -> None:
    """Clear every negative `dim_value` of `infos` (older paddle2onnx's -1, or onnxruntime's
    dims of a window larger than its input): unknown, no size, and no Slice inference aborts
    on it."""
    for vi in infos:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value < 0:
                d.ClearField("dim_value")


# onnx 1.23's Slice inference crashes (2^31) or loops for ever (2^32) on a step that large,
# and its data propagation (a Slice of a Shape) crashes where start + step passes 2^31 - 1
# (Shape(x)[2::2^31 - 1]: a segfault); any step of at least a dim's size picks the same
# elements, so the light model's is clamped
_STEP_LIMIT = 2**30


def _tame_slice_steps(graph: Graph, light: onnx.ModelProto) -> None:
    """Give the Slice nodes of light model `light`'s graph (and of its bodies) whose constant
    steps exceed ±`_STEP_LIMIT` a copy of those steps clamped to it (same output for every
    dim below it), and those whose steps are computed an input of unknown value in their
    place (data propagation would carry a computed step of 2^31 - 1 into the Slice as well:
    Unsqueeze, Concat, Cast, Gather of constants). The model-local functions that hold a
    Slice whose steps are not a constant within the limit are left out (their callers'
    outputs unknown): a caller's constant reaches them too."""
    g = light.graph
    taken: set[str] = set()
    for body, node in _slices(g):
        if len(node.input) < 5 or not node.input[4] or not is_default_domain(node):
            continue
        source = node.input[4]
        steps = _local_constant(body, source) if body is not g else None
        if steps is None:
            steps = graph.constant(source)
        if steps is None and graph.is_graph_input(source):
            continue  # fed: no value to propagate
        if steps is not None and (steps.dtype.kind not in "iu" or not steps.size):
            continue
        if steps is not None and float(np.abs(steps.astype(np.float64)).max()) <= _STEP_LIMIT:
            continue
        if not taken:
            taken = {*graph.producer, *graph.initializers, *graph.graph_inputs}
        kind = "clamped" if steps is not None else "hidden"
        name = next(n for i in itertools.count() if (n := f"{source}_{kind}{i}") not in taken)
        taken.add(name)
        if steps is None:
            vi = g.input.add()
            vi.name = name
            vi.type.tensor_type.elem_type = onnx.TensorProto.INT64
            vi.type.tensor_type.shape.dim.add()  # (1-D, of unknown length and value)
        else:
            clamped = np.clip(steps.astype(np.int64), -_STEP_LIMIT, _STEP_LIMIT)
            body.initializer.append(numpy_helper.from_array(clamped.astype(steps.dtype), name))
        node.input[4] = name
    kept = [f for f in light.functions if not _steps_may_be_huge(f)]
    if len(kept) < len(light.functions):
        del light.functions[:]
        light.functions.extend(kept)


def _steps_may_be_huge(function: onnx.FunctionProto) -> bool:
    """`function` (or a body in it) holds a Slice whose steps are not a constant of its own
    within ±`_STEP_LIMIT`."""
    for body, node in _slices(function):
        if len(node.input) < 5 or not node.input[4]:
            continue
        steps = _local_constant(body, node.input[4])
        if steps is None and body is not function:
            steps = _local_constant(function, node.input[4])
        if steps is None or steps.dtype.kind not in "iu":
            return True
        if steps.size and float(np.abs(steps.astype(np.float64)).max()) > _STEP_LIMIT:
            return True
    return False


_DISPUTED_ENDS = (2**31 - 1, 2**63 - 1)


def disputed_slice_end(end: int, step: int) -> bool:
    """A Slice end of INT32_MAX or INT64_MAX with a negative step, which onnxruntime and ONNX
    read differently: onnxruntime slices to the start of the axis (Slice(arange(4), [-1],
    [INT64_MAX], [0], [-1]) = [3, 2, 1, 0]); ONNX's definition, reference and shape inference
    clamp the end to the last index ([]). No shape, dim or value is derived from such a Slice
    (constant folding leaves it to the runtime too: `fold_kernels._slice`)."""
    return step < 0 and end in _DISPUTED_ENDS


def _hide_disputed_slice_ends(graph: Graph, g: onnx.GraphProto) -> None:
    """Give the Slice nodes of light graph `g` (and of its bodies) with a `disputed_slice_end`
    an ends input of unknown value (a new graph input of the same type): inference then knows
    the output's rank but none of its dims, where it would have inferred ONNX's empty axis."""
    taken: set[str] = set()
    for body, node in _slices(g):
        if len(node.input) < 5 or not node.input[2] or not node.input[4]:
            continue  # (steps absent: all 1)
        values = []
        for source in (node.input[2], node.input[4]):
            value = _local_constant(body, source) if body is not g else None
            values.append(graph.constant(source) if value is None else value)
        ends, steps = values
        if (
            ends is None
            or steps is None
            or ends.dtype.kind not in "iu"
            or steps.dtype.kind not in "iu"
        ):
            continue
        if ends.shape != steps.shape or ends.ndim != 1 or not is_default_domain(node):
            continue
        if not any(disputed_slice_end(int(e), int(k)) for e, k in zip(ends, steps, strict=True)):
            continue
        if not taken:
            taken = {*graph.producer, *graph.initializers, *graph.graph_inputs}
        name = next(
            n for i in itertools.count() if (n := f"{node.input[2]}_disputed{i}") not in taken
        )
        taken.add(name)
        _add_placeholder(g.input, name, numpy_helper.from_array(ends, name))
        node.input[2] = name


def _slices(g: onnx.GraphProto | onnx.FunctionProto, wanted: str = "Slice") -> Any:
    """(graph, node) for every `wanted` node (Slice) of `g` (a graph or a function) and of
    the bodies inside it."""
    for node in g.node:
        op = node.op_type
        if op == wanted:
            yield g, node
        elif op in ("If", "Loop", "Scan") or node.domain not in ("", "ai.onnx"):
            for body in subgraphs(node):
                yield from _slices(body, wanted)


def _drop_empty_squeeze_axes(graph: Graph, g: onnx.GraphProto) -> None:
    """Give the Squeeze nodes of light graph `g` (and of its bodies) whose axes input is an
    empty constant no axes input: onnxruntime squeezes every dim of 1 then, as without axes,
    where ONNX inference squeezes none (Squeeze(x[1, 6, 1], []): onnxruntime [6])."""
    if graph.opset_version("") < 13:
        return  # (axes is an attribute)
    for body, node in _slices(g, "Squeeze"):
        if len(node.input) < 2 or not node.input[1] or not is_default_domain(node):
            continue
        axes = _local_constant(body, node.input[1]) if body is not g else None
        if axes is None:
            axes = graph.constant(node.input[1])
        if axes is not None and axes.size == 0:
            del node.input[1:]


def _drop_short_split_counts(light: onnx.ModelProto) -> None:
    """Take from the Split nodes of light model `light` (its graph, bodies and functions) a
    `num_outputs` attribute that is positive but less than the node's outputs, and not given
    with a split input: onnx 1.23's Split inference reads past the sizes it made for that
    many (a failed assertion: the process aborts, as onnxruntime's loader does on such a
    model). Without it inference gives up on the node: its outputs' dims stay unknown."""
    for where in (light.graph, *light.functions):
        for _, node in _slices(where, "Split"):
            if is_short_split(node):
                kept = [a for a in node.attribute if a.name != "num_outputs"]
                del node.attribute[:]
                node.attribute.extend(kept)


def _local_constant(g: onnx.GraphProto | onnx.FunctionProto, name: str) -> np.ndarray | None:
    """The value of constant `name` of body (or function) `g`; None where it is none, or a
    segment of a larger tensor (`segment` set: its value is unknown)."""
    initializers = g.initializer if isinstance(g, onnx.GraphProto) else ()
    value = next((t for t in initializers if t.name == name), None)
    if value is None:
        node = next((n for n in g.node if n.op_type == "Constant" and n.output[:1] == [name]), None)
        value = None if node is None else constant_tensor(node)
    if value is None or value.HasField("segment"):
        return None
    return numpy_helper.to_array(value)


def _body_types_only(nodes: Any) -> None:
    """Clear the shapes the If/Loop/Scan bodies among `nodes` (and theirs) declare for their
    inputs, outputs and value_info: no runtime holds a body to them (a loop-carried value that
    a Concat grows keeps the first iteration's declared shape, a Scan state declared [2] is fed
    what the Scan's input has), and ONNX inference would take them into the node's outputs
    (a Loop's scan outputs, an If's outputs). What stays: element types, and a Loop body's
    iteration number and condition, which onnxruntime feeds with the rank declared there.
    The Scan's and Loop's own inference still type the body from the node's inputs."""
    for node in nodes:
        kept = 2 if node.op_type == "Loop" and is_default_domain(node) else 0
        for body in subgraphs(node):
            for vi in itertools.chain(body.input[kept:], body.output, body.value_info):
                if vi.type.HasField("tensor_type"):
                    vi.type.tensor_type.ClearField("shape")
            _body_types_only(body.node)


def _infer(graph: Graph) -> ShapeFacts:
    facts = ShapeFacts()
    light = light_model(graph, facts)
    inferred = inferred_light(light)
    # Where ONNX inference and onnxruntime disagree (a ceil-mode pool's last window), the
    # node's outputs become inputs of the shapes onnxruntime gives, and inference runs again
    # from there: each round takes nodes out, so it ends.
    cuts = inference_cuts(light, inferred)
    facts.apart_roots = frozenset(o for k in cuts for o in light.graph.node[k].output if o)
    facts.value_reads = tuple(
        (node.name, k)
        for node in graph.nodes.values()
        for k, t in enumerate(node.input)
        if t and (node.op_type, k) in _SHAPE_OPERANDS and not graph.is_constant(t)
    )
    while cuts:
        nodes = [n for k, n in enumerate(light.graph.node) if k not in cuts]
        del light.graph.node[:]
        light.graph.node.extend(nodes)
        light.graph.input.extend(vi for outputs in cuts.values() for vi in outputs)
        # (onnxruntime's dims of a window larger than its input can be negative: unknown
        # here, as a declared one is in `light_model`; a Slice of it aborted inference)
        _negative_dims_unknown(light.graph.input[-sum(map(len, cuts.values())) :])
        inferred = inferred_light(light)
        cuts = inference_cuts(light, inferred)
    g = inferred.graph
    for group in (g.input, g.value_info, g.output):
        for vi in group:
            facts.defer(vi)
    return facts


def inferred_light(light: onnx.ModelProto, data_prop: bool = True) -> onnx.ModelProto:
    """`light` (a `light_model`) with onnx's shape inference (not strict, no type check); `light`
    itself, declared shapes only, where inference gives up. A Slice that would read a negative
    dim (onnx's inference aborts the process there) is hidden from it: its outputs stay unknown
    (`inference_aborts.guarded_inference`)."""
    return guarded_inference(light, functools.partial(onnx_inference, data_prop=data_prop))
