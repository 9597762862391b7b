"""Models on which onnx's shape inference aborts the process, and onnxruntime's loader with it.

Two shapes of model make onnx 1.21 to 1.23's inference fail an assertion of its hardened
libstdc++ build (no exception: the process ends with SIGABRT), and onnxruntime runs that
inference when it loads a model:

- A Slice (opset 10 on; onnx issue #8481) of a tensor with a negative dim: it clamps each start
  into [0, dim − 1] with `std::clamp`. The same inference makes negative dims without a word
  from a window larger than its input (an unpadded 3×3 Conv or MaxPool of a 1×1 map, after
  `--input-shape` made it so; a ConvTranspose or MaxUnpool whose pads exceed what it adds; an
  STFT frame longer than the signal), negative pads or Split sizes, a negative Resize scale,
  TopK k, CenterCropPad shape or RoiAlign size.
- A Split (opset 18 on) whose `num_outputs` is positive but below its outputs, without a split
  input: it reads past the sizes it made (`is_short_split`).

`guarded_inference(model, infer)` runs an inference so that it cannot reach such a Slice. Where
the model holds a node that may make a negative dim (`_may_go_negative`, judged by its
attributes and constants: the three benchmark detectors hold none) and a Slice, those nodes
and what they read are inferred alone first (`_risk_settles_alone`: a model's stem); where
they make no negative dim, the model infers as it is. Else the Slices after them are hidden
from inference (an op of a private domain: outputs unknown) and given back round by round in
topological order, each once the dims it reads are final and not negative; a Slice that reads
a negative dim stays hidden. `negative_slice(model)` names the first such Slice, and
`inference_abort(model)` either kind, for the callers that refuse the model (load,
`--input-shape`, an onnxruntime session, onnx.checker's full check, an opset conversion);
it judges a copy of the model as onnxruntime's loader sees it: sparse initializers dense
(onnx's inference types no tensor from one: a Conv's sparse weight makes no dim there) and
local functions inlined (`_inlined`: a Slice in one is judged as the graph's). Slices inside
If/Loop/Scan bodies, and guarded_inference's in local functions, stay hidden in a model the
stem does not settle (their dims unknown); a call of a local function is judged whole, in
the default domain too. Sizes computed from small constants alone (pads through Identity or
Concat), which onnxruntime's constant folding makes constants before its own inference runs,
are judged by value (`_computed_sizes`; the copy's inference reads them, and the other values
that folding gives it, a Reshape's target: `_read_values`), and so, once an inference of the
copy knows the dims they measure, are sizes computed from Shapes and Sizes of tensors
(`_shape_sized`: onnxruntime folds a Shape of known dims too). Not foreseen: sizes computed
through other ops than `_FOLDABLE` ones, or from Shapes inside If/Loop/Scan bodies.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import onnx
import onnx.inliner
from onnx import numpy_helper

from graphopt.analysis.fold_kernels import (
    Undefined,
    kernel_outputs,
    node_attributes,
    parameter_rank_mismatch,
    schema_mismatch,
    slice_parameters,
)
from graphopt.analysis.usedef import skeleton_copy, small_constant
from graphopt.errors import LoadError
from graphopt.ir.nodes import constant_tensor, nested_bodies, subgraphs

log = logging.getLogger("graphopt.analysis.shapes")

_HIDDEN = "graphopt.hidden"  # a Slice of domain d hidden from inference is of `_HIDDEN + d`
_DEFAULT = ("", "ai.onnx")
# ops whose output dims onnx's inference computes from a window, stride and pads
_WINDOWED = frozenset(
    ("Conv", "ConvInteger", "QLinearConv", "DeformConv", "MaxPool", "AveragePool", "LpPool")
)
# op → the input whose constant value, when negative, onnx's inference takes into a dim
_SIZE_INPUTS = {
    "Pad": 1,
    "CenterCropPad": 1,
    "Resize": 2,
    "Upsample": 1,
    "TopK": 1,
    "Split": 1,
    "DFT": 1,  # dft_length
    "Col2Im": 1,  # image_shape
    "AffineGrid": 1,  # size
}
_SIZE_ATTRS = {
    "Pad": "pads",
    "RoiAlign": "output_height",
    "MaxRoiPool": "pooled_shape",
    "Split": "split",  # (opset 2 to 12)
}
# rounds of giving Slices back; past it the rest stay hidden (their dims unknown)
_MAX_ROUNDS = 16

Infer = Callable[[onnx.ModelProto], onnx.ModelProto]


def guarded_inference(model: onnx.ModelProto, infer: Infer) -> onnx.ModelProto:
    """`infer(model)` (onnx's shape inference, some way called), or where a Slice might read a
    negative dim, the same over a copy of `model` in which the Slices that could are hidden
    until what they read is known (module docstring); those that read a negative dim stay
    hidden. `model` itself is not changed."""
    if not _at_risk(model):
        return infer(model)
    constants = _constants(model.graph)
    if _risk_settles_alone(model, infer, constants):
        return infer(model)
    return _rounds(model, infer, constants)[0]


def refuse_aborting_model(
    model: onnx.ModelProto, where: str, declared: Mapping[str, onnx.ValueInfoProto] | None = None
) -> None:
    """A `LoadError` naming `where` and what in `model` makes onnx's shape inference and
    onnxruntime's loader abort (`inference_abort`); `declared`: graph inputs as the model
    declared them before `input_shapes` fixed their dims (those are judged apart, as
    `graphopt.api.refuse_contradicted_shapes` says them). For a model whose nodes were checked
    first (an undefined input or a required one left out crashes inference too)."""
    if declared:
        as_given = skeleton_copy(model)
        for vi in as_given.graph.input:
            if vi.name in declared:
                vi.CopyFrom(declared[vi.name])
        model = as_given
    aborting = inference_abort(model)
    if aborting:
        raise LoadError(f"{where}: {aborting}")


def full_check(model: onnx.ModelProto) -> None:
    """`onnx.checker.check_model(model, full_check=True)`, whose strict shape inference aborts
    on what `inference_abort` names: such a model raises the checker's `ValidationError`,
    saying why, instead."""
    aborting = inference_abort(model)
    if aborting:
        raise onnx.checker.ValidationError(aborting)
    onnx.checker.check_model(model, full_check=True)


def inference_abort(model: onnx.ModelProto) -> str:
    """Why onnx's shape inference and onnxruntime's loader would abort on `model` (a short
    Split, or a Slice of a negative dim), "" where nothing foreseen makes them. One walk over
    the nodes where the model has no Slice (layout_cdla's 1493: ~1 ms)."""
    sliced = False
    for g in _graphs(model):
        for node in g.node:
            op = node.op_type
            if op == "Split" and is_short_split(node):
                count = next(a.i for a in node.attribute if a.name == "num_outputs")
                return (
                    f"{_label(node)} splits into num_outputs={count} but has "
                    f"{len(node.output)} outputs: the model cannot run (onnx's shape inference "
                    "and onnxruntime abort on it)"
                )
            sliced = sliced or (op == "Slice" and node.domain in _DEFAULT)
    return negative_slice(model) if sliced else ""


def is_short_split(node: onnx.NodeProto) -> bool:
    """`node` is a default-domain Split whose `num_outputs` is positive but below its outputs,
    without a split input: onnx's Split inference (opset 18 on) reads past the sizes it made
    for that many outputs and aborts."""
    if node.domain not in _DEFAULT or (len(node.input) > 1 and node.input[1]):
        return False
    for a in node.attribute:
        if a.name == "num_outputs" and a.type == onnx.AttributeProto.INT:
            return 0 < a.i < len(node.output)
    return False


def negative_slice(model: onnx.ModelProto) -> str:
    """Why onnx's shape inference and onnxruntime would abort on `model`: the first Slice of its
    graph that reads a negative dim, with the node that made it ("" where none does, or none
    is foreseen). Costs one scan of the nodes, and shape inference only where some node may
    make a negative dim and a Slice follows it."""
    if not _at_risk(model, folded=True):
        return ""
    skeleton = skeleton_copy(model)
    _densify_sparse(skeleton.graph, model.graph)
    if skeleton.functions:
        skeleton = _inlined(skeleton)
    graph, opsets = skeleton.graph, _opsets(skeleton, skeleton.graph)
    constants = _constants(graph)  # (the main graph's, kept up to date by `_fold_sizes`)
    _fold_sizes(graph, opsets, constants=constants)
    for g in _nested_graphs(skeleton):
        _fold_sizes(g, _opsets(skeleton, g))
    reason, inferred = _judged(skeleton, constants)
    for _ in range(_MAX_ROUNDS):  # sizes from Shapes of tensors whose dims inference knows
        if reason or not _shape_sized(graph, constants):
            break
        # (guarded_inference's: `_judged` made it where the model is at risk)
        dims = _inferred_dims(inferred if inferred is not None else onnx_inference(skeleton))
        if not _fold_sizes(graph, opsets, dims, constants):
            break
        reason, inferred = _judged(skeleton, constants)
    return reason


def _judged(
    model: onnx.ModelProto, constants: Mapping[str, onnx.TensorProto]
) -> tuple[str, onnx.ModelProto | None]:
    """(`negative_slice` of `model`, a copy prepared for it; `guarded_inference` of it where
    that hid Slices, else None: it infers as it is); `constants`: `_constants(model.graph)`."""
    if not _at_risk(model, constants=constants) or _risk_settles_alone(
        model, onnx_inference, constants
    ):
        return "", None
    inferred, reason = _rounds(model, onnx_inference, constants)
    return reason, inferred


_INLINED = "graphopt.inlined#"  # a function's node k is named `_INLINED + k + ":"` for inlining


def _inlined(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its local functions' calls replaced by their nodes (onnx's inliner), as
    onnxruntime inlines them before its inference runs: a Slice inside a function is judged as
    one of the graph, named "<function>/<its name or op>"; `model` where the inliner refuses
    it (a recursive function)."""
    marked = onnx.ModelProto()
    marked.CopyFrom(model)
    names: list[str] = []
    for function in marked.functions:
        for node in function.node:
            node.name, name = f"{_INLINED}{len(names)}:", node.name
            names.append(f"{function.name}/{name or node.op_type}")
    try:
        out = onnx.inliner.inline_local_functions(marked)
    except (onnx.checker.ValidationError, RuntimeError, ValueError) as e:
        log.info("local functions not inlined (%s)", e)
        return model
    for g in _graphs(out):
        for node in g.node:
            if node.name.startswith(_INLINED):
                k = node.name[len(_INLINED) :].partition(":")[0]
                node.name = names[int(k)] if k.isdigit() and int(k) < len(names) else ""
    return out


def _densify_sparse(graph: onnx.GraphProto, source: onnx.GraphProto) -> None:
    """Make `graph`'s sparse initializers (`source`'s, without data) dense ones, as onnxruntime
    loads them before its inference, which then reads their dims (a Conv's weight) and
    values (a Pad's pads: a small one's are taken from `source`); onnx's inference types no
    tensor from a sparse initializer."""
    for sparse in source.sparse_initializer:
        graph.initializer.append(_dense(sparse))
    del graph.sparse_initializer[:]


def _dense(sparse: onnx.SparseTensorProto) -> onnx.TensorProto:
    """`sparse` as a dense tensor: its values where it is `small_constant` and they are
    readable, else its name, type and dims alone."""
    shell = onnx.TensorProto(name=sparse.values.name, data_type=sparse.values.data_type)
    shell.dims.extend(sparse.dims)
    if not small_constant(shell):
        return shell
    try:
        values = numpy_helper.to_array(sparse.values)
        indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
        if indices.ndim == 2:  # one row of coordinates per value
            indices = np.ravel_multi_index(tuple(indices.T), tuple(sparse.dims))
        flat = np.zeros(int(np.prod(sparse.dims)), values.dtype)
        flat[indices] = values
    except (ValueError, TypeError, IndexError, KeyError):  # (KeyError: element type 99)
        return shell
    return numpy_helper.from_array(flat.reshape(tuple(sparse.dims)), shell.name)


def onnx_inference(model: onnx.ModelProto, data_prop: bool = True) -> onnx.ModelProto:
    """onnx's shape inference as `graphopt.analysis.shapes` runs it (not strict, no type
    check); `model` itself, declared shapes only, where inference gives up."""
    try:
        return onnx.shape_inference.infer_shapes(
            model, check_type=False, strict_mode=False, data_prop=data_prop
        )
    except (
        onnx.shape_inference.InferenceError,
        onnx.checker.ValidationError,
        RuntimeError,
        ValueError,  # a C++ std::length_error ("vector::reserve": a Loop with no body)
        IndexError,  # a C++ std::out_of_range
    ) as e:
        log.info("shape inference gave up (%s); using declared shapes only", e)
        return model


def _rounds(
    model: onnx.ModelProto, infer: Infer, constants: Mapping[str, onnx.TensorProto]
) -> tuple[onnx.ModelProto, str]:
    """(the inferred model, why the first Slice that reads a negative dim makes it abort), the
    Slices after a node that may make a negative dim hidden and given back round by round;
    `constants`: `_constants(model.graph)` (the copy hides Slices, and keeps every constant)."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    for holder in (work, *work.functions):
        holder.opset_import.add(domain=_HIDDEN, version=1)
        holder.opset_import.add(domain=_HIDDEN + "ai.onnx", version=1)
    nodes = list(work.graph.node)
    waiting = _slices_after_risk(work.graph, _calls(work), constants)
    upstream = _waiting_upstream(work.graph, waiting)
    for k in waiting:
        nodes[k].domain = _HIDDEN + nodes[k].domain
    for node in _nested_slices(work):  # (bodies' and functions' Slices: hidden for good)
        node.domain = _HIDDEN + node.domain
    reason = ""
    for _ in range(_MAX_ROUNDS):
        inferred = infer(work)
        if not waiting:
            break
        dims = _inferred_dims(inferred)
        ready = [k for k in sorted(waiting) if not upstream[k] & waiting]
        for k in ready:
            waiting.discard(k)
            node = nodes[k]
            read = node.input[0] if node.input else ""
            shape = dims.get(read)
            if shape is not None and any(d < 0 for d in shape if d is not None):
                reason = reason or _reason(work.graph, node, read, shape, dims)
                continue  # stays hidden: its inference would abort
            node.domain = node.domain[len(_HIDDEN) :]
    _unhide(inferred)
    return inferred, reason


def _reason(
    graph: onnx.GraphProto,
    node: onnx.NodeProto,
    read: str,
    shape: tuple[int | None, ...],
    dims: dict[str, tuple[int | None, ...]],
) -> str:
    maker = _first_negative_maker(graph, dims)
    made = f" ({_label(maker)} makes it)" if maker is not None else ""
    shown = ", ".join("?" if d is None else str(d) for d in shape)
    return (
        f"{_label(node)} reads {read!r} of shape [{shown}], a negative dimension{made}: the "
        "model cannot run (onnx's shape inference and onnxruntime's loader can abort on it)"
    )


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name!r}" if node.name else node.op_type


def _first_negative_maker(
    graph: onnx.GraphProto, dims: dict[str, tuple[int | None, ...]]
) -> onnx.NodeProto | None:
    """The first node (in graph order) whose output has a negative dim and whose inputs have
    none: where the negative dim came from."""

    def negative(t: str) -> bool:
        shape = dims.get(t)
        return shape is not None and any(d is not None and d < 0 for d in shape)

    for node in graph.node:
        if any(negative(t) for t in node.output if t) and not any(
            negative(t) for t in node.input if t
        ):
            return node
    return None


def _unhide(inferred: onnx.ModelProto) -> None:
    """Give `inferred`'s hidden Slices their domains back and drop the imports hiding added."""
    for holder in (inferred, *inferred.functions):
        kept = [o for o in holder.opset_import if not o.domain.startswith(_HIDDEN)]
        del holder.opset_import[:]
        holder.opset_import.extend(kept)
    for node in itertools.chain(inferred.graph.node, _nested_slices(inferred)):
        if node.domain.startswith(_HIDDEN):
            node.domain = node.domain[len(_HIDDEN) :]


def _inferred_dims(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    """Known dims (negative ones too) of every tensor inference typed in `model`'s graph."""
    g = model.graph
    out: dict[str, tuple[int | None, ...]] = {}
    for vi in itertools.chain(g.input, g.value_info, g.output):
        if vi.type.WhichOneof("value") != "tensor_type" or not vi.type.tensor_type.HasField(
            "shape"
        ):
            continue
        out[vi.name] = tuple(
            d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim
        )
    for t in g.initializer:
        out[t.name] = tuple(t.dims)
    return out


# ---------------------------------------------------------------------------- which Slices


def _at_risk(
    model: onnx.ModelProto,
    folded: bool = False,
    constants: Mapping[str, onnx.TensorProto] | None = None,
) -> bool:
    """The model has a default-domain Slice and some node that may make a negative dim (the
    Slices looked for first: most models have none, and judging a node costs more); `folded`:
    judging sizes computed from constants by value too (`_computed_sizes`); `constants`:
    `_constants(model.graph)` where the caller has it."""
    graphs = list(_graphs(model))
    if not any(n.op_type == "Slice" and n.domain in _DEFAULT for g in graphs for n in g.node):
        return False
    for g in graphs:
        known = constants if g is model.graph and constants is not None else _constants(g)
        sized: list[onnx.NodeProto] = []  # (the nodes with `_size_inputs`, for `folded`)
        for node in g.node:
            if _may_go_negative(node, known):
                return True
            if node.op_type in _SIZE_INPUTS:
                sized.append(node)
        if not (folded and sized):
            continue
        computed = _computed_sizes(g, known, _opsets(model, g), sized=sized)
        if any(_has_negative(v) for v in computed.values()):
            return True
        # (dims come from the main graph's inference: functions are inlined into it first)
        main = g is model.graph or isinstance(g, onnx.FunctionProto)
        if main and _shape_sized(g, known, sized):
            return True
    return False


def _risk_settles_alone(
    model: onnx.ModelProto, infer: Infer, constants: Mapping[str, onnx.TensorProto]
) -> bool:
    """Whether every node of `model` that may make a negative dim is of its main graph, reads
    (through any nodes) no Slice, no node holding a body and none of another domain, and makes
    no negative dim, inferred over those nodes and what they read alone (a model's stem: a
    part of one inference). Negative dims start only at such nodes, so then none reaches any
    Slice: the model infers as it is. `constants`: `_constants(model.graph)`."""
    for nested in _nested_graphs(model):
        own = _constants(nested)  # (once a graph, not once a node)
        if any(_may_go_negative(node, own) for node in nested.node):
            return False
    graph = model.graph
    calls = _calls(model)
    risky = [k for k, node in enumerate(graph.node) if _may_go_negative(node, constants)]
    producer = {t: k for k, node in enumerate(graph.node) for t in node.output if t}
    kept = set(risky)
    stack = list(risky)
    while stack:
        for t in graph.node[stack.pop()].input:
            k = producer.get(t) if t else None
            if k is None or k in kept:
                continue
            node = graph.node[k]
            if (
                node.op_type == "Slice"
                or node.domain not in _DEFAULT
                or (node.domain, node.op_type) in calls
                or any(subgraphs(node))
            ):
                return False  # (a Slice there would read what an earlier such node makes)
            kept.add(k)
            stack.append(k)
    stem = onnx.ModelProto(ir_version=model.ir_version)
    stem.opset_import.extend(model.opset_import)
    g = stem.graph
    g.name = "stem"
    g.input.extend(graph.input)
    g.initializer.extend(graph.initializer)
    g.node.extend(graph.node[k] for k in sorted(kept))
    made = [t for k in risky for t in graph.node[k].output if t]
    for t in made:
        g.output.add().name = t
    # what the model declares of the stem's tensors, which inference merges into them
    inside = {t for k in kept for t in graph.node[k].output if t}
    g.value_info.extend(
        vi for vi in itertools.chain(graph.value_info, graph.output) if vi.name in inside
    )
    inferred = infer(stem)
    if inferred is stem:  # inference gave up on it: nothing is settled
        return False
    dims = _inferred_dims(inferred)
    return not any(d is not None and d < 0 for t in made for d in dims.get(t, ()))


def _graphs(model: onnx.ModelProto) -> Iterator[onnx.GraphProto | onnx.FunctionProto]:
    """The main graph, then `_nested_graphs`."""
    yield model.graph
    yield from _nested_graphs(model)


def _nested_graphs(model: onnx.ModelProto) -> Iterator[onnx.GraphProto | onnx.FunctionProto]:
    """The main graph's bodies, the local functions and their bodies."""
    yield from nested_bodies(model.graph, holders_only=True)
    for function in model.functions:
        yield function
        yield from nested_bodies(function, holders_only=True)


def _nested_slices(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """The default-domain (or hidden) Slices of `model`'s bodies and local functions."""
    for g in _nested_graphs(model):
        for node in g.node:
            if node.op_type == "Slice" and (
                node.domain in _DEFAULT or node.domain.startswith(_HIDDEN)
            ):
                yield node


def _slices_after_risk(
    graph: onnx.GraphProto,
    calls: frozenset[tuple[str, str]],
    constants: Mapping[str, onnx.TensorProto],
) -> set[int]:
    """Indices of the default-domain Slices of `graph` that read, through any nodes, what a
    node that may make a negative dim makes (a node holding a body or calling a function
    counts as one where those hold one: judged whole); `calls`: `_calls`; `constants`:
    `_constants(graph)`."""
    tainted: set[str] = set()
    found: set[int] = set()
    # graph order is topological for a loaded graph; a model out of order is walked until
    # nothing changes
    changed = True
    while changed:
        changed = False
        for k, node in enumerate(graph.node):
            reads = any(t in tainted for t in node.input if t)
            if reads and node.op_type == "Slice" and node.domain in _DEFAULT and k not in found:
                found.add(k)
                changed = True
            if not (reads or _may_go_negative(node, constants) or _holds_risk(node, calls)):
                continue
            new = [t for t in node.output if t and t not in tainted]
            if new:
                tainted.update(new)
                changed = True
    return found


def _holds_risk(node: onnx.NodeProto, calls: frozenset[tuple[str, str]]) -> bool:
    """`node` is not of the default domain or calls a local function (`calls`: judged whole,
    a default-domain one too) or holds a body with a node that may make a negative dim."""
    if node.domain not in _DEFAULT or (node.domain, node.op_type) in calls:
        return True
    for body in subgraphs(node):
        constants = _constants(body)
        if any(_may_go_negative(n, constants) or _holds_risk(n, calls) for n in body.node):
            return True
    return False


def _calls(model: onnx.ModelProto) -> frozenset[tuple[str, str]]:
    """(domain, op) of the calls to `model`'s local functions."""
    return frozenset((f.domain, f.name) for f in model.functions)


def _waiting_upstream(graph: onnx.GraphProto, waiting: set[int]) -> dict[int, set[int]]:
    """Per waiting Slice: the waiting Slices it reads from, through any nodes."""
    producer = {t: k for k, node in enumerate(graph.node) for t in node.output if t}
    out: dict[int, set[int]] = {}
    for k in waiting:
        seen: set[int] = set()
        stack = [k]
        while stack:
            for t in graph.node[stack.pop()].input:
                p = producer.get(t) if t else None
                if p is not None and p not in seen:
                    seen.add(p)
                    stack.append(p)
        out[k] = seen & waiting
    return out


def _constants(g: onnx.GraphProto | onnx.FunctionProto) -> dict[str, onnx.TensorProto]:
    """`g`'s initializers (sparse ones made dense: `_dense`) and Constant nodes' values."""
    out: dict[str, onnx.TensorProto] = {}
    if isinstance(g, onnx.GraphProto):
        out.update((t.values.name, _dense(t)) for t in g.sparse_initializer)
        out.update((t.name, t) for t in g.initializer)
    for node in g.node:
        if node.op_type == "Constant" and node.domain in _DEFAULT and node.output:
            value = constant_tensor(node)
            if value is not None:
                out[node.output[0]] = value
    return out


def _opsets(
    model: onnx.ModelProto, g: onnx.GraphProto | onnx.FunctionProto
) -> list[onnx.OperatorSetIdProto]:
    """The opsets `g`'s nodes are of: a function's own, else the model's."""
    if isinstance(g, onnx.FunctionProto) and g.opset_import:
        return list(g.opset_import)
    return list(model.opset_import)


Dims = Mapping[str, tuple[int | None, ...]]


def _computed_sizes(
    g: onnx.GraphProto | onnx.FunctionProto,
    constants: Mapping[str, onnx.TensorProto],
    opsets: list[onnx.OperatorSetIdProto],
    dims: Dims | None = None,
    sized: list[onnx.NodeProto] | None = None,
    reads: Callable[[onnx.NodeProto], list[str]] | None = None,
) -> dict[str, onnx.TensorProto]:
    """The `_size_inputs` of `g`'s nodes that are no constant but are computed from constants
    alone (and Shapes of tensors whose `dims` are known), by value: onnxruntime's constant
    folding makes them constants before its inference, which then takes a negative one into a
    dim (pads through Identity or Concat), where onnx's inference of the model sees none. Only
    `_FOLDABLE` ops of small constants are evaluated (`_evaluated`); what they do not make
    stays unknown. `sized`: `g`'s nodes of `_SIZE_INPUTS` ops, where the caller has them;
    `reads`: other inputs than `_size_inputs` (`_read_values`)."""
    out: dict[str, onnx.TensorProto] = {}
    producer: dict[str, onnx.NodeProto] | None = None  # (built for the first computed size)
    for node in g.node if sized is None else sized:
        if node.domain not in _DEFAULT or (reads is None and node.op_type not in _SIZE_INPUTS):
            continue
        for name in (reads or _size_inputs)(node):
            if name in constants or name in out:
                continue
            if producer is None:
                producer = {t: n for n in g.node for t in n.output if t}
            value = _evaluated(name, producer, constants, opsets, dims)
            if value is not None:
                out[name] = value
    return out


def _shape_sized(
    g: onnx.GraphProto | onnx.FunctionProto,
    constants: Mapping[str, onnx.TensorProto],
    sized: list[onnx.NodeProto] | None = None,
) -> bool:
    """Whether a `_size_inputs` of `g`'s nodes is computed by `_FOLDABLE` ops from `constants`
    and Shapes (or Sizes) of tensors that are not constant: onnxruntime folds it where
    inference knows those tensors' dims. `sized`: as `_computed_sizes` takes it."""
    producer: dict[str, onnx.NodeProto] | None = None
    for node in g.node if sized is None else sized:
        if node.op_type not in _SIZE_INPUTS or node.domain not in _DEFAULT:
            continue
        for name in _size_inputs(node):
            if name in constants:
                continue
            if producer is None:
                producer = {t: n for n in g.node for t in n.output if t}
            chain = _chain(name, producer, constants, lambda t: True)
            if chain is not None and any(_measures(n, constants) for n in chain):
                return True
    return False


def _measures(node: onnx.NodeProto, constants: Mapping[str, onnx.TensorProto]) -> bool:
    """`node` is a Shape or Size of a tensor that is not constant."""
    return node.op_type in ("Shape", "Size") and bool(node.input) and node.input[0] not in constants


# ops whose outputs hold no more values than the inputs (broadcasts checked apart) and whose
# value is one: what `_computed_sizes` evaluates
_FOLDABLE = frozenset(
    (
        "Identity", "Concat", "Cast", "CastLike", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
        "Transpose", "Slice", "Gather", "Shape", "Size", "Neg", "Abs", "Sign", "Floor", "Ceil",
        "Round", "Relu", "Clip", "Add", "Sub", "Mul", "Div", "Mod", "Min", "Max", "Where",
        "ConstantOfShape", "Tile", "Expand",
    )
)  # fmt: skip
_BROADCAST = frozenset(("Add", "Sub", "Mul", "Div", "Mod", "Min", "Max", "Where"))
_MAX_FOLDED_NODES = 64
_MAX_FOLDED_VALUES = 4096


def _chain(
    name: str,
    producer: Mapping[str, onnx.NodeProto],
    constants: Mapping[str, onnx.TensorProto],
    measured: Callable[[str], bool] | None = None,
) -> list[onnx.NodeProto] | None:
    """The nodes that make tensor `name`, in graph order, where they are at most
    `_MAX_FOLDED_NODES` `_FOLDABLE` default-domain ones reading constants, or Shapes and Sizes
    of tensors that `measured` accepts; else None."""
    chain: dict[int, onnx.NodeProto] = {}
    seen: set[str] = set()
    stack = [name]
    while stack:
        t = stack.pop()
        if t in seen or t in constants:
            continue
        seen.add(t)
        node = producer.get(t)
        if (
            node is None
            or node.domain not in _DEFAULT
            or node.op_type not in _FOLDABLE
            or len(chain) >= _MAX_FOLDED_NODES
        ):
            return None
        chain[id(node)] = node
        if measured is not None and _measures(node, constants) and measured(node.input[0]):
            continue  # (its value is the dims of its input, not the input's)
        stack.extend(i for i in node.input if i)
    order = {id(n): k for k, n in enumerate(producer.values())}
    return sorted(chain.values(), key=lambda n: order[id(n)])


def _evaluated(
    name: str,
    producer: Mapping[str, onnx.NodeProto],
    constants: Mapping[str, onnx.TensorProto],
    opsets: list[onnx.OperatorSetIdProto],
    dims: Dims | None = None,
) -> onnx.TensorProto | None:
    """The value of tensor `name` where the nodes that make it are `_FOLDABLE` default-domain
    ones reading small constants alone, or Shapes and Sizes of tensors whose `dims` are known
    (`_chain`; no value past `_MAX_FOLDED_VALUES`), one node at a time (`_evaluate`); else
    None."""

    def known(t: str) -> bool:
        shape = dims.get(t) if dims is not None else None
        return shape is not None and all(d is not None and d >= 0 for d in shape)

    chain = _chain(name, producer, constants, known if dims is not None else None)
    if chain is None:
        return None
    values: dict[str, np.ndarray] = {}
    for t in {i for node in chain for i in node.input if i}:
        if t in constants:
            value = _small_value(constants[t])
            if value is None:
                return None
            values[t] = value
    for node in chain:
        if dims is not None and _measures(node, constants) and known(node.input[0]):
            values[node.output[0]] = _measured(node, dims[node.input[0]])
        elif not _evaluate(node, values, opsets):
            return None
    return numpy_helper.from_array(values[name], name) if name in values else None


def _measured(node: onnx.NodeProto, shape: tuple[int | None, ...]) -> np.ndarray:
    """The value of Shape or Size `node` of a tensor of dims `shape` (all known)."""
    known = [int(d or 0) for d in shape]
    if node.op_type == "Size":
        return np.array(math.prod(known), np.int64)
    rank = len(known)
    bounds = {a.name: a.i for a in node.attribute if a.name in ("start", "end")}
    start, end = bounds.get("start", 0), bounds.get("end", rank)
    start, end = (min(max(v + rank if v < 0 else v, 0), rank) for v in (start, end))
    return np.array(known[start:end], np.int64)


def _small_value(t: onnx.TensorProto) -> np.ndarray | None:
    if t.data_location == onnx.TensorProto.EXTERNAL or t.HasField("segment"):
        return None
    if math.prod(t.dims) > _MAX_FOLDED_VALUES:
        return None
    try:
        value = numpy_helper.to_array(t)
    except (ValueError, TypeError, KeyError):  # (no data: `skeleton_copy`'s; KeyError: type 99)
        return None
    return value if value.dtype.kind in "biuf" else None


def _evaluate(
    node: onnx.NodeProto, values: dict[str, np.ndarray], opsets: list[onnx.OperatorSetIdProto]
) -> bool:
    """Put `node`'s outputs into `values` (which hold its inputs), by `_quick` or else onnx's
    reference evaluator; False where it makes too many values, has none the runtimes agree on
    (`Undefined`: Div(INT_MIN, −1)), or neither evaluates it."""
    if any(i and i not in values for i in node.input):
        return False  # (made by a later node: a graph out of order)
    inputs = [values[i] for i in node.input if i]
    if node.op_type == "ConstantOfShape" and (
        not inputs
        or inputs[0].dtype.kind not in "iu"  # (a float shape: NaN and inf have no int)
        or math.prod(int(d) for d in inputs[0].ravel()) > _MAX_FOLDED_VALUES
    ):
        return False
    if node.op_type in ("Tile", "Expand") and not _grows_little(node.op_type, inputs):
        return False
    if node.op_type in ("Div", "Mod") and any(
        v.dtype.kind in "biu" and not v.all() for v in inputs[1:]
    ):
        return False  # (an integer division by 0: no value the runtimes agree on)
    if node.op_type in _BROADCAST:
        try:
            shape = np.broadcast_shapes(*(v.shape for v in inputs))
        except ValueError:
            return False
        if math.prod(shape) > _MAX_FOLDED_VALUES:
            return False
    try:
        results = _quick(node, [values[i] if i else None for i in node.input], opsets)
    except Undefined:
        return False
    if results is None:
        results = _reference(node, {i: values[i] for i in node.input if i}, opsets)
    if results is None:
        return False
    made = [o for o in node.output if o]
    for o, result in zip(made, results, strict=False):
        value = np.asarray(result)
        if value.size > _MAX_FOLDED_VALUES or value.dtype.kind not in "biuf":
            return False
        values[o] = value
    return True


def _grows_little(op: str, inputs: list[np.ndarray]) -> bool:
    """Whether Tile or Expand of `inputs` makes at most `_MAX_FOLDED_VALUES` values."""
    if len(inputs) != 2 or inputs[1].dtype.kind not in "iu" or inputs[1].ndim != 1:
        return False
    sizes = [int(d) for d in inputs[1]]
    if any(d < 0 for d in sizes):
        return False
    if op == "Tile":
        return inputs[0].size * math.prod(sizes) <= _MAX_FOLDED_VALUES
    try:  # (Expand: numpy's broadcast, a 1 in the shape keeping the input's dim)
        shape = np.broadcast_shapes(inputs[0].shape, tuple(sizes))
    except ValueError:
        return False
    return math.prod(shape) <= _MAX_FOLDED_VALUES


def _reference(
    node: onnx.NodeProto, feeds: dict[str, np.ndarray], opsets: list[onnx.OperatorSetIdProto]
) -> list[np.ndarray] | None:
    """`node`'s outputs by onnx's reference evaluator (a few ms), None where it fails."""
    from onnx.reference import ReferenceEvaluator  # (only for a model at risk)

    graph = onnx.helper.make_graph(
        [node],
        "fold",
        [onnx.helper.make_tensor_value_info(i, onnx.TensorProto.UNDEFINED, None) for i in feeds],
        [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
         for o in node.output if o],
    )  # fmt: skip
    # (the IR its opsets need: onnx's newest by default, which no runtime here reads anyway)
    ir_version = onnx.helper.find_min_ir_version_for(list(opsets), True)
    model = onnx.helper.make_model(graph, opset_imports=opsets, ir_version=ir_version)
    try:
        with np.errstate(all="ignore"):
            return list(ReferenceEvaluator(model).run(None, feeds))
    except Exception as e:  # (the evaluator raises what its numpy kernels raise)
        log.debug("not folded: %s %r (%s)", node.op_type, node.name, e)
        return None


def _quick(
    node: onnx.NodeProto, inputs: list[np.ndarray | None], opsets: list[onnx.OperatorSetIdProto]
) -> list[np.ndarray] | None:
    """`node`'s outputs by constant folding's numpy kernels (`fold_kernels.kernel_outputs`: the
    ops exporters compute sizes with, PyTorch's F.pad chain, Squeeze, Shape, Div, Where, Min,
    Max, ...), as ONNX defines them at the model's opset; None where they take no such node
    or case (`_reference` evaluates it): a node not of its op's schema (its attributes and
    inputs; the element types are the kernels' to check: a Concat-1 of int64 sizes is joined,
    as onnx's inference reads it), or a Slice end past its axis with a negative step
    (`_reversed_past_the_end`; an end of INT_MAX is read as onnxruntime's folding reads it
    first: `_ends_as_onnxruntime_reads`). A Squeeze given empty axes squeezes every dim of 1, as
    onnxruntime's folding does (`_no_axes_given`). Raises `Undefined` where the value is none
    the runtimes agree on."""
    version = next((o.version for o in opsets if o.domain in _DEFAULT), 0)
    if not version:
        return None
    try:
        if schema_mismatch(node, version) or parameter_rank_mismatch(node, inputs):
            return None
        if node.op_type == "Slice":
            inputs = _ends_as_onnxruntime_reads(inputs, version)
            if _reversed_past_the_end(node, inputs, version):
                return None
        x = inputs[0] if inputs else None
        if node.op_type == "Squeeze" and x is not None and _no_axes_given(inputs, version):
            return [np.squeeze(x)]  # (the kernels leave it to onnxruntime)
        return kernel_outputs(node, inputs, version)
    except (ValueError, ArithmeticError, TypeError, IndexError, KeyError):
        return None  # (hostile inputs the schema lets through: a Slice's NaN start)


_INT_MAXES = (2**31 - 1, 2**63 - 1)


def _ends_as_onnxruntime_reads(
    inputs: list[np.ndarray | None], version: int
) -> list[np.ndarray | None]:
    """`inputs` of Slice (opset 10 on) with each end of INT_MAX (`_INT_MAXES`, of either width)
    on an axis of a negative step made the ends' type's minimum: onnxruntime's folding reads
    such an end as "to the start" (Slice(c, [-1], [INT_MAX], [0], [-1]) is c reversed whole),
    ONNX's definition and its reference evaluator as the axis's last index (nothing), which
    judged reversed negative pads '' where the loader aborted."""
    if version < 10 or len(inputs) < 5:
        return inputs
    ends, steps = inputs[2], inputs[4]
    if ends is None or steps is None or ends.dtype.kind != "i" or ends.shape != steps.shape:
        return inputs  # (the kernel refuses what is not a Slice)
    to_start = np.isin(ends, _INT_MAXES) & (steps < 0)
    if not to_start.any():
        return inputs
    ends = np.where(to_start, np.iinfo(ends.dtype).min, ends).astype(ends.dtype)
    return [*inputs[:2], ends, *inputs[3:]]


def _no_axes_given(inputs: list[np.ndarray | None], version: int) -> bool:
    """Whether Squeeze (opset 13 on) of `inputs` is given an empty axes tensor, of which
    onnxruntime's folding squeezes every dim of 1 and onnx's reference evaluator none (pads
    [[0, 0, -5, ...]] squeezed so made a negative dim that aborted the loader, judged '')."""
    axes = inputs[1] if version >= 13 and len(inputs) > 1 else None
    return axes is not None and axes.size == 0


def _reversed_past_the_end(
    node: onnx.NodeProto, inputs: list[np.ndarray | None], version: int
) -> bool:
    """Whether Slice `node` of `inputs` has an end at or past its axis's length with a negative
    step: onnxruntime and ONNX differ on such ends (the kernels on INT_MAX alone)."""
    params = slice_parameters(inputs, node_attributes(node), version)
    x = inputs[0] if inputs else None
    if params is None or x is None:
        return False  # (the kernel refuses it)
    for end, axis, step in zip(*params[1:], strict=True):
        if step < 0 and -x.ndim <= axis < x.ndim:
            dim = x.shape[axis]
            if end + (dim if end < 0 else 0) >= dim:
                return True
    return False


def _fold_sizes(
    g: onnx.GraphProto | onnx.FunctionProto,
    opsets: list[onnx.OperatorSetIdProto],
    dims: Dims | None = None,
    constants: dict[str, onnx.TensorProto] | None = None,
) -> bool:
    """Make each of `g`'s `_computed_sizes` (of `_read_values`) read by its node from a Constant
    node of its value put first (onnx's inference then reads it, as onnxruntime's after its
    constant folding); whether there was one. `constants`: `_constants(g)` where the caller
    keeps it (the Constants made are added to it)."""
    if constants is None:
        constants = _constants(g)
    folded = _computed_sizes(g, constants, opsets, dims, reads=_read_values)
    if not folded:
        return False
    taken = {t for node in g.node for t in itertools.chain(node.input, node.output)}
    if isinstance(g, onnx.GraphProto):
        taken.update(t.name for t in itertools.chain(g.input, g.initializer))
    constant_of: dict[str, str] = {}
    made: list[onnx.NodeProto] = []
    for name, value in folded.items():
        fresh = next(n for k in itertools.count() if (n := f"{name}:folded{k or ''}") not in taken)
        taken.add(fresh)
        constant_of[name] = fresh
        made.append(onnx.helper.make_node("Constant", [], [fresh], value=value))
        constants[fresh] = value
    for node in g.node:
        if node.domain in _DEFAULT:
            for name in _read_values(node):
                if name in constant_of:
                    at = list(node.input).index(name)
                    node.input[at] = constant_of[name]
    nodes = [*made, *g.node]
    del g.node[:]
    g.node.extend(nodes)
    return True


def _may_go_negative(node: onnx.NodeProto, constants: Mapping[str, onnx.TensorProto]) -> bool:
    """Whether onnx's inference of `node` may make a negative dim from inputs of dims ≥ 0: a
    window that an input dim of 0 leaves no room for (out = ⌊(in + pads − window)/stride⌋ + 1,
    negative for in = 0 unless pads + stride ≥ window), a ConvTranspose whose pads exceed what
    it adds, or a negative constant size or attribute. A computed size is taken as it comes
    (data propagation of a negative one is not foreseen)."""
    if node.domain not in _DEFAULT:
        return False
    op = node.op_type
    if op in _WINDOWED:
        return not _window_fits(node, constants, transposed=False)
    if op in ("ConvTranspose", "MaxUnpool"):  # out = stride·(in − 1) + window − pads
        return not _window_fits(node, constants, transposed=True)
    if op == "STFT":  # (signal − frame_length)/frame_step + 1 frames: below 0 for a short one
        return True
    attr = _SIZE_ATTRS.get(op)
    if attr is not None:
        for a in node.attribute:
            if a.name == attr and (
                (a.type == onnx.AttributeProto.INT and a.i < 0)
                or (a.type == onnx.AttributeProto.INTS and any(v < 0 for v in a.ints))
            ):
                return True
        if op == "RoiAlign":
            return any(a.name == "output_width" and a.i < 0 for a in node.attribute)
    for name in _size_inputs(node):
        value = constants.get(name)
        if value is not None and _has_negative(value):
            return True
    return False


def _size_inputs(node: onnx.NodeProto) -> list[str]:
    """The inputs of default-domain `node` whose values onnx's inference takes into its output
    dims (`_SIZE_INPUTS`; Resize's sizes too)."""
    op = node.op_type
    index = _SIZE_INPUTS.get(op)
    if index is None:
        return []
    at = [index]
    if op == "Resize":
        at = [1] if len(node.input) == 2 else [2, 3]  # Resize-10: (X, scales)
    return [node.input[k] for k in at if k < len(node.input) and node.input[k]]


# op → the inputs besides `_SIZE_INPUTS` whose values onnx's inference reads into its output
# dims (where it cannot make a negative one from them): folded in the judged copy too
_VALUE_INPUTS = {
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "OneHot": (1,),
    **{f"Reduce{op}": (1,) for op in ("Sum", "Mean", "Max", "Min", "Prod", "L1", "L2")},
    **{f"Reduce{op}": (1,) for op in ("LogSum", "LogSumExp", "SumSquare")},
}


def _read_values(node: onnx.NodeProto) -> list[str]:
    """`_size_inputs` and `_VALUE_INPUTS` of default-domain `node`: what onnxruntime's constant
    folding makes known to its inference."""
    at = _VALUE_INPUTS.get(node.op_type, ())
    values = [node.input[k] for k in at if k < len(node.input) and node.input[k]]
    return _size_inputs(node) + values


def _has_negative(t: onnx.TensorProto) -> bool:
    if t.data_location == onnx.TensorProto.EXTERNAL or t.HasField("segment"):
        return False
    try:
        value = numpy_helper.to_array(t)
    except (ValueError, TypeError, KeyError):  # (KeyError: an element type ONNX lacks, 99)
        return False
    return value.dtype.kind in "iuf" and bool(np.any(value < 0))


def _window_fits(
    node: onnx.NodeProto, constants: Mapping[str, onnx.TensorProto], transposed: bool
) -> bool:
    """Every spatial output dim of `node` (a windowed op, or a ConvTranspose) is ≥ 0 for every
    input dim ≥ 0 by its attributes (and its weight's dims where no kernel_shape says)."""
    attrs = {a.name: a for a in node.attribute}
    auto = attrs["auto_pad"].s.decode(errors="replace") if "auto_pad" in attrs else "NOTSET"
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return True  # out = ⌈in/stride⌉ (ConvTranspose: in·stride)
    if transposed and "output_shape" in attrs:
        return all(v >= 0 for v in attrs["output_shape"].ints)
    kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else None
    if kernel is None and len(node.input) > 1 and node.input[1] in constants:
        kernel = list(constants[node.input[1]].dims[2:])
    if not kernel:
        return False  # a computed weight: its window is not known here
    rank = len(kernel)
    strides = list(attrs["strides"].ints) if "strides" in attrs else [1] * rank
    dilations = list(attrs["dilations"].ints) if "dilations" in attrs else [1] * rank
    pads = list(attrs["pads"].ints) if "pads" in attrs and auto != "VALID" else [0] * 2 * rank
    extra = list(attrs["output_padding"].ints) if "output_padding" in attrs else [0] * rank
    if len(strides) != rank or len(dilations) != rank or len(pads) != 2 * rank:
        return False
    for i in range(rank):
        window = dilations[i] * (kernel[i] - 1) + 1
        padded = pads[i] + pads[i + rank]
        if transposed:  # out = stride·(in − 1) + output_padding + window − pads
            added = extra[i] if i < len(extra) else 0
            if added + window < padded + strides[i]:
                return False
        elif padded + strides[i] < window:
            return False
    return True
