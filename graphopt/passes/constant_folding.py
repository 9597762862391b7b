"""Constant folding: nodes whose inputs are all constants become initializers.

Evaluation uses the numpy kernels of `fold_kernels` for shape arithmetic and onnxruntime (one
node, no optimizations) for anything else. `Shape`/`Size` of a tensor whose dims are statically
known (from `graphopt.analysis.shapes`) fold too, which is what collapses exporter-generated
`Shape → Gather → Unsqueeze → Concat → Reshape` chains on static-shape models.

What it does not fold: random ops, ops with subgraphs, custom domains, Q/DQ nodes (they carry
quantization for the runtime), `Dropout` (see `eliminate-noops`), nodes producing a graph
output, nodes onnxruntime refuses as they stand (not of their op's schema at the model's
opset, or a parameter input of another rank: `fold_kernels.schema_mismatch`,
`parameter_rank_mismatch`), and results larger than `size_limit` elements that are also
larger than their inputs, each input counted once (so folding never inflates the model, e.g.
`ConstantOfShape` or `Expand` of a big shape, or `Concat(c, c, …, c)`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx

from graphopt.analysis.fold_kernels import (
    NONDETERMINISTIC,
    SIZED_BY_INFERENCE,
    evaluate,
    output_elements_bound,
    range_length_disputed,
    schema_mismatch,
)
from graphopt.analysis.usedef import computed_from
from graphopt.errors import BackendError
from graphopt.ir import Graph
from graphopt.ir.graph import tensor_value
from graphopt.ir.model_io import IR_NEEDS_INPUTS_FOR_INITIALIZERS
from graphopt.ir.nodes import constant_tensor, is_default_domain, nested_bodies, subgraphs
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass

DEFAULT_SIZE_LIMIT = 1 << 20

NEVER_FOLD = NONDETERMINISTIC | {
    "Constant",  # already a constant (see constants-to-initializers)
    "Dropout",  # random in training mode; removed by eliminate-noops in inference
    "QuantizeLinear",  # Q/DQ around constant weights is the quantization itself
    "DequantizeLinear",
    "DynamicQuantizeLinear",
}


def initializers_allowed(graph: Graph, ctx: PassContext, rule: str) -> bool:
    """False (with a note) for IR < 4 models, where every initializer must also be a graph input
    (and would then be an overridable input rather than a constant)."""
    if graph.model.ir_version and graph.model.ir_version < IR_NEEDS_INPUTS_FOR_INITIALIZERS:
        ctx.note(rule, "*", "refused", "IR < 4 requires initializers to be graph inputs")
        return False
    return True


def shape_value(graph: Graph, ctx: PassContext, node: onnx.NodeProto) -> np.ndarray | None:
    """The value of `Shape(x)` / `Size(x)` when the dims it reads are all static, else None."""
    from graphopt.analysis.shapes import shape_facts

    if not node.input or not node.input[0]:
        return None
    dims = shape_facts(graph, ctx).shape(node.input[0])
    if dims is None:
        return None
    if node.op_type == "Size":
        if not all(isinstance(d, int) for d in dims):
            return None
        value = np.array(math.prod(d for d in dims if isinstance(d, int)), dtype=np.int64)
    else:
        if graph.opset_version("") < 15 and any(a.name in ("start", "end") for a in node.attribute):
            return None  # Shape has no start/end before opset 15: onnxruntime refuses the node
        start, end = graph.attr(node, "start", 0), graph.attr(node, "end")
        picked = dims[start:end]
        if not all(isinstance(d, int) for d in picked):
            return None
        value = np.array(picked, dtype=np.int64)
    if node.input[0] in dims_in_dispute(graph, ctx):
        return None
    from graphopt.passes.noop import dims_inference_counts_apart  # (noop imports this module)

    if node.input[0] in dims_inference_counts_apart(graph, ctx):
        return None  # dims the checker's inference counts otherwise (a ceil_mode pool's)
    return value


_DISPUTED_KEY = "dims-in-dispute"


def dims_in_dispute(graph: Graph, ctx: PassContext) -> frozenset[str]:
    """Tensors whose static dims in the shape facts onnxruntime versions may not share: the
    outputs of a Range of constant inputs whose length onnxruntime 1.23.2 and 1.32.0 count
    differently (`range_length_disputed`; ONNX inference takes 1.23.2's count), the outputs
    of an If/Loop/Scan or local function call holding one (`_holds_disputed_range`), and
    every tensor computed from them (an If reading one too). Their Shape and Size are not folded,
    as the Range itself is not. Cached in `ctx.facts` (cleared when a pass changes the graph:
    constants stay constants, so every Range the facts counted is seen)."""
    cached = ctx.facts.get(_DISPUTED_KEY)
    if isinstance(cached, frozenset):
        return cached
    roots: list[str] = []
    for node in graph.nodes.values():
        if node.op_type != "Range" or not is_default_domain(node) or len(node.input) < 3:
            continue
        if not all(graph.is_constant(t) for t in node.input[:3]):
            continue  # inference counts only constant bounds
        if range_length_disputed([graph.constant(t) for t in node.input[:3]]):
            roots.extend(o for o in node.output if o)
    functions = {(f.domain, f.name): f for f in graph.model.functions}
    callers = (
        [n for n in graph.nodes.values() if (n.domain, n.op_type) in functions] if functions else []
    )
    owners = [] if range_free_bodies(graph, ctx) else graph.nodes_with_bodies()
    for node in [*owners, *callers]:
        if _holds_disputed_range(node, graph.constant, functions, set()):
            roots.extend(o for o in node.output if o)
    ctx.facts[_DISPUTED_KEY] = frozen = frozenset(computed_from(graph, roots))
    return frozen


NO_RANGE_IN_BODIES = "no-range-in-bodies"
"""`ctx.lasting_facts` key in a body's context (`graphopt.subgraphs`): the graph around it found
no Range, nor a call of a model-local function, in any of its bodies at any depth
(`range_free_bodies`), so none in this body's own bodies either (no built-in pass that runs
in a body makes a Range or a call; not told where the user's rule files run, whose rewrites
may): each level of nested bodies would walk all below it."""


def range_free_bodies(graph: Graph, ctx: PassContext) -> bool:
    """Whether no If/Loop/Scan body of `graph`, at any depth, holds a Range or calls a
    model-local function (which may hold one: `_holds_disputed_range` looks into it; a Loop
    body's call of a function returning Range(-0.1, 0.20000002, 0.3) was not counted, and a
    Slice of the Loop's output was dropped as a no-op): as `ctx` was told
    (`NO_RANGE_IN_BODIES`), else by a walk over their nodes."""
    if ctx.lasting_facts.get(NO_RANGE_IN_BODIES):
        return True
    functions = {(f.domain, f.name) for f in graph.model.functions}
    for owner in graph.nodes_with_bodies():
        for body in subgraphs(owner):
            for g in (body, *nested_bodies(body)):
                for n in g.node:
                    if n.op_type == "Range" or (n.domain, n.op_type) in functions:
                        return False
    return True


Scope = Callable[[str], np.ndarray | None]


def _holds_disputed_range(
    node: onnx.NodeProto,
    outer: Scope,
    functions: dict[tuple[str, str], onnx.FunctionProto],
    called: set[tuple[str, str]],
) -> bool:
    """Whether a body of `node` (at any depth) or the model-local function it calls holds a
    Range of constant bounds (the body's own, or of a scope around it: `outer`) whose length
    onnxruntime versions count apart (`range_length_disputed`). Inference counts it in there
    and gives `node`'s outputs its count: Range(-0.1, 0.20000002, 0.3) in a Loop body is 1
    element to inference, 2 in onnxruntime 1.32, and Slice(Squeeze(loop_out, [0]), 0, 1) was
    dropped as a no-op where the original gives 1 element (the result gave 2)."""
    key = (node.domain, node.op_type)
    scopes: list[tuple[onnx.GraphProto | onnx.FunctionProto, Scope]] = [
        (body, outer) for body in subgraphs(node)
    ]
    if key in functions and key not in called:
        called.add(key)  # (a function sees no scope around it: its constants are its own)
        scopes.append((functions[key], lambda _: None))
    return any(_disputed_in(body, around, functions, called) for body, around in scopes)


def _disputed_in(
    body: onnx.GraphProto | onnx.FunctionProto,
    outer: Scope,
    functions: dict[tuple[str, str], onnx.FunctionProto],
    called: set[tuple[str, str]],
) -> bool:
    """`_holds_disputed_range` for the nodes of one body (or function)."""
    wanted = (
        _RANGE_OR_BODIED.union(name for _, name in functions) if functions else _RANGE_OR_BODIED
    )
    if not any(n.op_type in wanted for n in body.node):
        return False
    local: dict[str, onnx.TensorProto | None] = {}  # what the body defines: None, no constant
    for i in body.input:
        local[i if isinstance(i, str) else i.name] = None
    if isinstance(body, onnx.GraphProto):
        local.update((t.name, t) for t in body.initializer)
    for n in body.node:
        for k, out in enumerate(n.output):
            const = n.op_type == "Constant" and k == 0 and is_default_domain(n)
            local[out] = constant_tensor(n) if const else None

    def value(name: str) -> np.ndarray | None:
        if name not in local:
            return outer(name)
        t = local[name]
        if t is None or t.HasField("segment"):
            return None
        try:
            return tensor_value(t)
        except (ValueError, TypeError, KeyError, IndexError):
            return None  # (not a value inference reads either)

    for n in body.node:
        if n.op_type == "Range" and is_default_domain(n) and len(n.input) >= 3:
            bounds = [value(t) for t in n.input[:3]]
            if all(b is not None for b in bounds) and range_length_disputed(bounds):
                return True
        elif _holds_disputed_range(n, value, functions, called):
            return True
    return False


_RANGE_OR_BODIED = frozenset({"Range", "If", "Loop", "Scan"})


@dataclass
class ConstantFolder:
    """Folds nodes on a worklist; reusable by passes that create new constants."""

    graph: Graph
    ctx: PassContext
    rule: str
    size_limit: int = DEFAULT_SIZE_LIMIT
    fold_shapes: bool = True
    folded: int = 0
    refused: int = 0
    _values: dict[str, np.ndarray] = field(default_factory=dict)

    def value(self, tensor: str) -> np.ndarray | None:
        v = self._values.get(tensor)
        if v is None:
            v = self.graph.constant(tensor)
            if v is not None:
                self._values[tensor] = v
        return v

    def candidate(self, node: onnx.NodeProto) -> bool:
        """Cheap test: may `node` be folded (before evaluating anything)?"""
        if not is_default_domain(node) or node.op_type in NEVER_FOLD:
            return False
        inputs = [i for i in node.input if i]
        if not inputs:
            return False
        if all(self.graph.is_constant(i) for i in inputs) or (
            self.fold_shapes and node.op_type in ("Shape", "Size")
        ):
            return not self.graph.has_subgraphs(node)
        return False

    def run(self, seeds: Iterable[onnx.NodeProto]) -> None:
        queue = deque(n.name for n in seeds)
        queued = set(queue)
        while queue:
            name = queue.popleft()
            queued.discard(name)
            node = self.graph.nodes.get(name)
            if node is None or not self.candidate(node):
                continue
            outputs = self._fold(node)
            if outputs is None:
                continue
            for out in outputs:
                for user in self.graph.consumers.get(out, ()):
                    if user not in queued:
                        queued.add(user)
                        queue.append(user)

    def _fold(self, node: onnx.NodeProto) -> list[str] | None:
        graph = self.graph
        live_outputs = [o for o in node.output if o]
        if any(graph.is_graph_output(o) for o in live_outputs):
            return self._refuse(node, "produces a graph output")
        inputs = [self.value(i) if i else None for i in node.input]
        if node.op_type in ("Shape", "Size") and inputs and inputs[0] is None:
            mismatch = schema_mismatch(node, graph.opset_version(""))
            if mismatch is not None:
                return self._refuse(node, mismatch)
            value = shape_value(graph, self.ctx, node)
            if value is None:
                return None  # dynamic dims: nothing to fold, nothing to explain
            results = [value]
        else:
            if any(v is None for i, v in zip(node.input, inputs, strict=True) if i):
                return None
            # each tensor once: Concat(c, c, …, c) reads one constant, whatever the count
            distinct = {i: v for i, v in zip(node.input, inputs, strict=True) if v is not None}
            consumed = sum(v.size for v in distinct.values())
            bound = output_elements_bound(node, inputs, graph.opset_version(""))
            if bound is None and node.op_type in SIZED_BY_INFERENCE:
                bound = self._inferred_size(live_outputs)
            if bound is not None and bound > self.size_limit and bound > consumed:
                return self._refuse(
                    node, f"output of {bound} elements exceeds size_limit={self.size_limit}"
                )
            try:
                results = evaluate(
                    node, inputs, graph.opset_version(""), ir_version=graph.model.ir_version
                )
            except BackendError as e:
                return self._refuse(node, str(e))
            if not all(isinstance(r, np.ndarray) for r in results):  # a sequence, an optional
                return self._refuse(node, "evaluation did not give one tensor per output")
            total = sum(r.size for r in results)
            if total > self.size_limit and total > consumed:
                return self._refuse(
                    node, f"output of {total} elements exceeds size_limit={self.size_limit}"
                )
        if len(results) != len(live_outputs) or not all(isinstance(r, np.ndarray) for r in results):
            return self._refuse(node, "evaluation did not give one tensor per output")
        graph.remove_node(node)
        for out, value in zip(live_outputs, results, strict=True):
            graph.add_initializer(out, value, exact_name=True)
            self._values[out] = value
        self.folded += 1
        self.ctx.note(self.rule, node.name, "applied")
        return live_outputs

    def _inferred_size(self, outputs: list[str]) -> int | None:
        """The elements of `outputs` together by the shape facts (None: a dim not known)."""
        from graphopt.analysis.shapes import shape_facts

        facts = shape_facts(self.graph, self.ctx)
        sizes = [facts.size(o) for o in outputs]
        return None if any(n is None for n in sizes) else sum(n for n in sizes if n is not None)

    def _refuse(self, node: onnx.NodeProto, reason: str) -> list[str] | None:
        self.refused += 1
        self.ctx.note(self.rule, node.name, "refused", reason)
        return None


def check_size_limit(size_limit: object) -> None:
    """A fold pass's `size_limit` option: an int of 1 or more (TypeError / ValueError, which
    the pipeline loader makes a PipelineError naming file:line). A result no larger than its
    inputs folds at any limit, so below 1 every limit meant the same (-1 ran as 0), and 0,
    "no limit" to other tools, refused every growing fold."""
    if isinstance(size_limit, bool) or not isinstance(size_limit, int):
        raise TypeError(f"size_limit must be an int, got {size_limit!r}")
    if size_limit < 1:
        raise ValueError(
            f"size_limit must be 1 or more (the elements a folded result larger than its "
            f"inputs may have; default {DEFAULT_SIZE_LIMIT}), got {size_limit}"
        )


@register_pass
@dataclass
class ConstantFolding(Pass):
    """Evaluate every deterministic default-domain node whose inputs are all constants.

    y = f(c₁, …, cₙ), cᵢ constant  ⇒  initializer y := f(c₁, …, cₙ)
    y = Shape(x), shape(x) static   ⇒  initializer y := shape(x)      (also Size)

    Refused when |y| > size_limit and |y| > Σ|cᵢ| (elements), and for random, Q/DQ, Dropout,
    subgraph-carrying and custom-domain nodes.
    """

    name = "constant-folding"
    opt_level = 1
    size_limit: int = DEFAULT_SIZE_LIMIT
    fold_shapes: bool = True

    def __post_init__(self) -> None:
        check_size_limit(self.size_limit)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if not initializers_allowed(graph, ctx, self.name):
            return PassResult(False)
        folder = ConstantFolder(graph, ctx, self.name, self.size_limit, self.fold_shapes)
        # A necessary condition first, from the graph's index (no repeated field of the node
        # is read): the first input is a constant, or the node reads a shape. Most nodes fail
        # it (layout_cdla, 615 nodes before the folds: 1.1 → 0.3 ms); `candidate` checks the rest.
        seeds = []
        for name, node in graph.nodes.items():
            first = next((t for t in graph.inputs_of(name) if t), "")
            reads_constant = bool(first) and graph.is_constant(first)
            if (reads_constant or node.op_type in ("Shape", "Size")) and folder.candidate(node):
                seeds.append(node)
        folder.run(seeds)
        return PassResult(folder.folded > 0, {"folded": folder.folded, "refused": folder.refused})
