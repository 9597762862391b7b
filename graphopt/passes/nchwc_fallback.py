"""An NCHWc model that stays correct on every CPU with onnxruntime's NCHWc kernels: the blocked
graph, guarded by the block size.

`ort-nchwc-layout` reorders filters for one block size b (8 with AVX2, 16 with AVX-512), and
onnxruntime does not check it: on a CPU with another b the blocked kernels compute wrong values
silently. With `fallback: true` the pass keeps both graphs and lets the model pick at run time:

    b' = Shape(nchwc.ReorderInput(0[1, 4, 1, 1]))[1]      (4 channels padded to this CPU's block)
    y  = If(b' = b, then: the NCHWc graph, else: the graph as it was before the pass)

so a session at ORT_DISABLE_ALL runs the blocked kernels where they are right and the portable
graph on a CPU with another b (8 with SSE/AVX2, 16 with AVX-512). Both branches read the
same graph inputs and initializers from the outer scope; their own tensors are renamed so the
model stays in SSA form; the guard's own tensors take fresh names. The price is size: the model
carries both sets of filters.

What it does not do: make the model load where onnxruntime has no NCHWc kernels (it registers
them, ReorderInput included, only where MlasNchwcGetBlockSize() > 1, e.g. x86-64; elsewhere the
probe and the NCHWc branch have no kernel and the session fails to load: use `ort-fusions`
there), or guard a model whose graph outputs are not all produced by nodes (an output that is a
graph input or an initializer cannot become an If output) or not all of a type the If of the
model's opset may return (a sequence before opset 13, an optional or a bfloat16 tensor before
16: onnx.checker rejects such an If), or that has a node with a subgraph
(If/Loop/Scan: references inside its body would not follow the renaming), or whose graph
outputs are computed from dims ONNX inference counts otherwise than onnxruntime (a ceil_mode
pool's last window: onnxruntime's If allocates its outputs at the inferred size and fails the
run); the pass then leaves the graph unchanged (`ort-cpu` = `ort-fusions` for it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from graphopt.analysis.usedef import computed_from
from graphopt.ir import Graph
from graphopt.ir.graph import scope_names
from graphopt.passes.constants import adopt_tensor
from graphopt.passes.ort_nchwc import BLOCK_SIZE_KEY, NCHWC_DOMAIN

PROBE_CHANNELS = 4  # ReorderInput pads channels up to a multiple of b; 4 < every NCHWc b
GUARD_NODES = 5  # ReorderInput, Shape, Gather, Equal, If


def branches(model: onnx.ModelProto) -> tuple[onnx.GraphProto, onnx.GraphProto] | None:
    """(the NCHWc graph, the NCHW graph) of a model `guard` made; None for any other model."""
    nodes = model.graph.node
    if not (
        len(nodes) == GUARD_NODES
        and nodes[0].op_type == "ReorderInput"
        and nodes[0].domain == NCHWC_DOMAIN
        and nodes[-1].op_type == "If"
        and any(p.key == BLOCK_SIZE_KEY for p in model.metadata_props)
    ):
        return None
    bodies = {a.name: a.g for a in nodes[-1].attribute}
    return bodies["then_branch"], bodies["else_branch"]


def with_block_size(model: onnx.ModelProto, block: int) -> onnx.ModelProto:
    """A copy of a guarded model that expects block size `block`: what a CPU with another block
    size sees (`block` ≠ the model's: the NCHW fallback runs), for verifying both branches."""
    if branches(model) is None:
        raise ValueError("not a guarded NCHWc model")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    # Equal(probe's block size, expected) reads a new initializer: `expected` may be the
    # model's own int64 b, which other nodes read too (`guard`'s `_shared_constant`)
    taken = scope_names(copy.graph)
    name = next(
        f"nchwc_block_size_{i}"
        for i in range(len(taken) + 1)
        if f"nchwc_block_size_{i}" not in taken
    )
    copy.graph.initializer.append(numpy_helper.from_array(np.array(block, np.int64), name))
    copy.graph.node[3].input[1] = name
    return copy


def unguardable(graph: Graph) -> str:
    """Why the graph cannot be guarded, or "" when it can."""
    opset = graph.opset_version("")
    if opset < 1:
        return "the model imports no default-domain opset to write the If in"
    returnable = _if_output_types(opset)
    declared = {o.name: o.type for o in graph.proto.output}
    for out in graph.graph_outputs:
        if graph.producer_node(out) is None:
            return f"graph output {out!r} is not produced by a node"
        declared_type = declared.get(out)
        if declared_type is None or declared_type.WhichOneof("value") is None:
            continue  # no type declared (the model fails onnx.checker already): as it was
        kind = _type_text(declared_type)
        if kind not in returnable:  # the If would hold an output onnx.checker rejects
            kind = kind or "value of a type If does not name"
            return f"graph output {out!r} is a {kind}, which an If at opset {opset} cannot return"
    for node in graph.nodes.values():
        if graph.has_subgraphs(node):
            return f"node {node.name!r} carries a subgraph"
    return ""


def outputs_counted_apart(graph: Graph, apart_roots: Iterable[str]) -> str:
    """Why an If cannot return the graph outputs, or "": one is computed from a tensor whose
    dims ONNX inference counts otherwise than onnxruntime computes them (`apart_roots`: a
    ceil_mode pool's last window, `ShapeFacts.apart_roots`). onnxruntime's If allocates each
    output at the size its inference gives the If (the branches' count) and fails the run when
    the branch computes another ("The output OrtValue provided for output ... has shape
    {1,8,5,4} but the computed output shape for this run is {1,8,5,3}"), in both branches;
    a graph output, outside an If, is written at the size computed."""
    roots = list(apart_roots)
    if not roots:
        return ""
    apart = computed_from(graph, roots)
    for out in graph.graph_outputs:
        if out in apart:
            return (
                f"graph output {out!r} has dims ONNX inference counts otherwise than "
                "onnxruntime (an If returning it fails the run)"
            )
    return ""


def _if_output_types(opset: int) -> frozenset[str]:
    """The types ("tensor(float)", "seq(tensor(int64))", …) an If of default-domain opset
    `opset` may return (its type constraint V)."""
    schema = onnx.defs.get_schema("If", opset, "")
    return frozenset(
        kind
        for c in schema.type_constraints
        if c.type_param_str == "V"
        for kind in c.allowed_type_strs
    )


def _type_text(kind: onnx.TypeProto) -> str:
    """`kind` as a schema writes types ("tensor(float)", "seq(tensor(float))"); "" for a type
    it does not name (unset, map, sparse tensor, undefined element type)."""
    which = kind.WhichOneof("value")
    if which == "tensor_type":
        elem = kind.tensor_type.elem_type
        if elem == onnx.TensorProto.UNDEFINED or elem not in onnx.TensorProto.DataType.values():
            return ""
        return f"tensor({onnx.TensorProto.DataType.Name(elem).lower()})"
    if which in ("sequence_type", "optional_type"):
        inner = _type_text(getattr(kind, which).elem_type)
        return f"{'seq' if which == 'sequence_type' else 'optional'}({inner})" if inner else ""
    return ""


_Wiring = tuple[str, tuple[str, ...], tuple[str, ...]]  # a node's name, inputs and outputs


@dataclass
class Portable:
    """The graph as it was before the layout pass: what the NCHW branch runs."""

    # the If to be, holding only its else branch: copies of the graph's nodes, in order (the
    # branches are built in place: make_node(then_branch=…, else_branch=…) copied them again,
    # 0.2-0.3 ms)
    guard: onnx.NodeProto
    wiring: list[_Wiring]  # the nodes', from the graph's index
    initializers: list[onnx.TensorProto]  # its initializers: the model's own, not copies


def snapshot(graph: Graph) -> Portable:
    """The graph as it is now: copies of its nodes (written back in order), its initializers.

    The initializers are held, not copied (a copy of every weight cost 3.9 ms of the pass's
    ~40 on layout_cdla): the layout pass only adds and drops initializers, never edits one, and
    a dropped one stays in the model's list until the next `commit`, which `guard` precedes.
    """
    proto = graph.commit().graph
    guard = onnx.NodeProto()
    _graph_attribute(guard, "else_branch").node.extend(proto.node)  # the name order make_node has
    return Portable(guard, _wiring(graph, graph.nodes), list(proto.initializer))


def guard(graph: Graph, portable: Portable, block: int) -> None:
    """Replace `graph` (the NCHWc rewrite of `portable`) by If(block size = `block`, graph,
    portable), taking back the initializers only `portable` reads."""
    infos = list(graph.proto.value_info)  # as at the snapshot (a commit would prune them)
    held = {id(t): t.name for t in graph.proto.initializer}  # `portable`'s ids are theirs (alive)
    # a name given twice (load refuses it since 55ab133; a Graph edited by hand may hold one):
    # drop every copy of a dropped one first, as a commit here always did
    if len(set(held.values())) < len(held):
        graph.commit()
        held = {id(t): t.name for t in graph.proto.initializer}
    order = graph.toposort()  # what a commit would write, without writing it
    # the value infos a commit would have kept (of tensors that are produced, inputs or
    # initializers now, before the portable graph's initializers join again)
    described = set(graph.producer) | set(graph.graph_inputs) | set(graph.initializers)
    outputs = list(dict.fromkeys(graph.graph_outputs))  # an If writes each output once (SSA)
    # an initializer only the portable graph reads joins the outer scope again, after the
    # blocked graph's; one whose name the blocked graph holds with another type or shape
    # (never seen) is copied under a new name, renamed in its branch
    clashes: dict[str, str] = {}
    rejoined: list[onnx.TensorProto] = []
    for init in portable.initializers:
        mine = graph.initializers.get(init.name)
        if mine is not None and _same_tensor(mine, init):
            continue
        name = init.name if mine is None else graph.unique_name(f"{init.name}_nchw")
        if mine is not None:
            clashes[init.name] = name
        if mine is None and id(init) in held:
            graph.initializers[name] = init  # still in the model's list: no bytes copied
        else:
            adopt_tensor(graph, name, init)
        rejoined.append(graph.initializers[name])
    _move_to_end(graph.proto.initializer, rejoined)
    node = portable.guard
    else_branch = node.attribute[0].g
    then_branch = _graph_attribute(node, "then_branch")
    then_branch.node.extend(order)
    then_wiring = _wiring(graph, [n.name for n in order])
    then_names = _as_branch(graph, then_branch, then_wiring, infos, outputs, "nchwc")
    else_names = _as_branch(graph, else_branch, portable.wiring, infos, outputs, "nchw", clashes)
    for blocked in order:
        graph.remove_node(blocked)
    # what stays in the outer scope: the inputs, the initializers and the If's outputs
    outer = set(graph.graph_inputs) | set(graph.initializers) | set(outputs)
    keep_info = outer & described
    for i in reversed(range(len(graph.proto.value_info))):
        if graph.proto.value_info[i].name not in keep_info:
            del graph.proto.value_info[i]  # now described inside the branches
    if graph.proto.quantization_annotation:
        _move_annotations(
            graph.proto, outer, [(then_branch, then_names), (else_branch, else_names)]
        )

    # each constant the model's own where it has an equal one (a second run's CSE would merge
    # ours into it); `with_block_size` gives its copies a block size of their own
    zeros = np.zeros((1, PROBE_CHANNELS, 1, 1), np.float32)
    probe = _shared_constant(graph, "nchwc_probe", zeros)
    channel_axis = _shared_constant(graph, "nchwc_probe_axis", np.array(1, np.int64))
    expected = _shared_constant(graph, "nchwc_block_size", np.array(block, np.int64))
    padded = graph.make_node(
        "ReorderInput", [probe], 1, name="nchwc_probe_reorder", domain=NCHWC_DOMAIN
    ).output[0]
    shape = graph.make_node("Shape", [padded], 1, name="nchwc_probe_shape").output[0]
    size = graph.make_node("Gather", [shape, channel_axis], 1, name="nchwc_probe_block").output[0]
    same = graph.make_node("Equal", [size, expected], 1, name="nchwc_block_matches").output[0]
    # = helper.make_node("If", [same], outputs, name=…, then_branch=…, else_branch=…)
    node.op_type = "If"
    node.input.append(same)
    node.output.extend(outputs)
    node.name = graph.unique_name("nchwc_or_nchw")
    graph.add_node(node)


def _shared_constant(graph: Graph, hint: str, value: np.ndarray) -> str:
    """An initializer holding `value`: the model's own where it has an equal one (what CSE would
    merge ours into on a second run: an int64 1 is common), else a new one."""
    raw = value.tobytes()
    data_type = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
    for name, init in graph.initializers.items():
        if (
            init.data_type == data_type
            and tuple(init.dims) == value.shape
            and init.HasField("raw_data")
            and init.raw_data == raw
            and not graph.is_graph_input(name)
        ):
            return name
    return graph.add_initializer(hint, value)


def _graph_attribute(node: onnx.NodeProto, name: str) -> onnx.GraphProto:
    """A new graph attribute `name` of `node` (as make_attribute makes it), to fill in place."""
    attribute = node.attribute.add()
    attribute.name = name
    attribute.type = onnx.AttributeProto.GRAPH
    return attribute.g


def _move_annotations(
    model_graph: onnx.GraphProto,
    outer: set[str],
    parts: list[tuple[onnx.GraphProto, dict[str, str]]],
) -> None:
    """Each quantization annotation of `model_graph` naming a tensor that left it (`outer`: the
    names it still holds) moves into the branches holding that tensor, under its name there
    (the names of its parameter tensors too); one that names a tensor no branch holds names
    nothing any more and goes."""
    notes = model_graph.quantization_annotation
    for i in reversed(range(len(notes))):
        note = notes[i]
        if note.tensor_name in outer:
            continue
        for branch, renamed in parts:
            if note.tensor_name in renamed:
                moved = branch.quantization_annotation.add()
                moved.CopyFrom(note)
                moved.tensor_name = renamed[note.tensor_name]
                for entry in moved.quant_parameter_tensor_names:
                    entry.value = renamed.get(entry.value, entry.value)
        del notes[i]
    for branch, _ in parts:  # in the model's order, as added above in reverse
        branch.quantization_annotation.reverse()


def _move_to_end(initializers: Any, last: list[onnx.TensorProto]) -> None:
    """Reorder the model's initializer list so that `last` ends it, in that order (the order
    adding them there would give); moves pointers only."""
    position = {id(t): i for i, t in enumerate(last)}
    initializers.sort(key=lambda t: position.get(id(t), -1))  # stable: the others keep order


def _same_tensor(a: onnx.TensorProto, b: onnx.TensorProto) -> bool:
    """The layout pass only adds initializers (fresh names), so a name both graphs hold is the
    same tensor; type and dims are checked, not the bytes (comparing them cost more than the
    whole rewrite on a 20 MB model)."""
    return a.data_type == b.data_type and list(a.dims) == list(b.dims)


def _wiring(graph: Graph, names: Iterable[str]) -> list[_Wiring]:
    """The nodes' names and wiring from the graph's index (no protobuf field is read)."""
    return [(name, graph.inputs_of(name), graph.outputs_of(name)) for name in names]


def _as_branch(
    graph: Graph,
    branch: onnx.GraphProto,
    wiring: list[_Wiring],
    infos: list[onnx.ValueInfoProto],
    outputs: list[str],
    tag: str,
    renamed_initializers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Make `branch`, holding copies of a graph's nodes in order (`wiring`: theirs), an If
    branch: every tensor they produce renamed (fresh in `graph`; its value info in `infos`
    copied), graph inputs and initializers read from the outer scope, `outputs` as its
    outputs. Fresh names are taken in the order of the nodes' outputs, then of their names.
    Returns the renaming: the graph's name of each tensor → its name in the branch."""
    renamed: dict[str, str] = dict(renamed_initializers or {})
    for _, _, produced in wiring:
        for out in produced:
            if out:
                renamed[out] = graph.unique_name(f"{out}_{tag}")
    for node, (name, inputs, produced) in zip(branch.node, wiring, strict=True):
        node.name = graph.unique_name(f"{name}_{tag}")
        node.input[:] = [renamed.get(tensor, tensor) for tensor in inputs]
        node.output[:] = [renamed.get(tensor, tensor) for tensor in produced]
    branch.name = f"{graph.proto.name or 'graph'}_{tag}"
    declared = {o.name: o for o in graph.proto.output}
    for out in outputs:
        info = branch.output.add()
        info.CopyFrom(declared[out])
        info.name = renamed[out]
        if info.type.HasField("tensor_type"):
            # the element type only: onnxruntime holds a branch to its declared shape, and an
            # exporter's wrong one (PP-OCRv5 rec declares a rank-0 output) stopped the model
            # at ORT_DISABLE_ALL; the If's own output keeps the declaration
            info.type.tensor_type.ClearField("shape")
    for info in infos:
        if info.name in renamed:
            copy_info = branch.value_info.add()
            copy_info.CopyFrom(info)
            copy_info.name = renamed[info.name]
    return renamed
