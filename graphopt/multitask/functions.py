"""Model-local functions of merged models: same-named functions that differ are renamed.

Two models may each define a local function under one (domain, name, overload) with different
bodies (two exports that both call their block `local:Block`). A model holds one function per
key, so `rename_clashing` gives the later model's function a fresh name (its task prefix in
front: `m1_Block`) and renames every call of it in that model: graph nodes, If/Loop/Scan
bodies, and the model's other functions. Functions equal byte for byte keep their name and are
stored once. `restore_names` gives a split task its functions' own names back. A clashing
function named as an op onnx or onnxruntime defines (com.microsoft:Gelu) is a `MergeError`:
onnxruntime runs its op for such a node, not the function, and would run the renamed function.

`inline_keeping_placements` inlines a model's local functions (before an opset conversion: the
converter drops them) keeping the device placements onnx's inliner drops or leaves stale.

What it does not do: rename functions that do not clash, or rename attribute references inside
function bodies (a function names no other function there, only in its nodes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence

import onnx

from graphopt.ir import subgraphs
from graphopt.multitask.errors import MergeError

# (domain, name, overload) of a local function, as a node calls it
FunctionKey = tuple[str, str, str]


def rename_clashing(
    protos: Sequence[onnx.ModelProto], prefixes: Sequence[str]
) -> list[list[tuple[str, str, str]]]:
    """Rename, in place, each function that differs from an earlier model's function of the
    same key, and its calls in that model. Returns per model the renames made, as
    (domain, new name, old name) triples (JSON-friendly, for the task table)."""
    seen: dict[FunctionKey, bytes] = {}
    taken = {(f.domain, f.name) for p in protos for f in p.functions}
    renames: list[list[tuple[str, str, str]]] = []
    for proto, prefix in zip(protos, prefixes, strict=True):
        made: list[tuple[str, str, str]] = []
        # Until none differs: renaming a function's calls changes the bytes of the functions
        # calling it, which may then differ from an earlier model's function of their name.
        while True:
            mapping: dict[FunctionKey, str] = {}
            for f in proto.functions:
                key = (f.domain, f.name, f.overload)
                if key in seen and seen[key] != f.SerializeToString(deterministic=True):
                    if runtime_has_op(f.domain, f.name):
                        raise MergeError(
                            f"{prefix!r}: local function {f.domain}:{f.name} differs from another "
                            f"model's function of that name, and onnxruntime has an op "
                            f"{f.domain}:{f.name} that it runs instead of the function: renamed, "
                            "the calls would run the function; merge the model separately"
                        )
                    mapping[key] = _fresh(f.domain, prefix + f.name, taken)
            if not mapping:
                break
            _rename(proto, mapping)
            made.extend((key[0], new, key[1]) for key, new in mapping.items())
        for f in proto.functions:
            seen.setdefault((f.domain, f.name, f.overload), f.SerializeToString(deterministic=True))
        renames.append(made)
    return renames


def restore_names(model: onnx.ModelProto, renames: Sequence[Sequence[str]]) -> None:
    """Give back the names `rename_clashing` changed (its (domain, new, old) triples), in place,
    for the functions `model` holds; a name another of its functions has is kept as it is."""
    held = {(f.domain, f.name, f.overload) for f in model.functions}
    mapping: dict[FunctionKey, str] = {}
    for domain, new, old in renames:
        for d, name, overload in held:
            if (d, name) == (domain, new) and (domain, old, overload) not in held:
                mapping[(domain, new, overload)] = old
    if mapping:
        _rename(model, mapping)


def runtime_has_op(domain: str, name: str) -> bool:
    """Whether a node `domain:name` is an op onnx or onnxruntime defines (onnxruntime runs its
    kernel for such a node, not a model-local function of that name: com.microsoft:Gelu)."""
    domain = "" if domain == "ai.onnx" else domain
    return onnx.defs.has(name, domain) or (domain, name) in _onnxruntime_ops()


@functools.cache
def _onnxruntime_ops() -> frozenset[tuple[str, str]]:
    """(domain, name) of every op onnxruntime registers a schema for (its contrib domains
    com.microsoft, com.microsoft.nchwc, com.ms.internal.nhwc too); empty where it cannot say."""
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        schemas = ort_state.get_all_operator_schema()
    except (ImportError, AttributeError):
        return frozenset()
    return frozenset((s.domain, s.name) for s in schemas)


def _fresh(domain: str, name: str, taken: set[tuple[str, str]]) -> str:
    candidate, k = name, 1
    while (domain, candidate) in taken:
        candidate = f"{name}_{k}"
        k += 1
    taken.add((domain, candidate))
    return candidate


def _rename(model: onnx.ModelProto, mapping: Mapping[FunctionKey, str]) -> None:
    for f in model.functions:
        new = mapping.get((f.domain, f.name, f.overload))
        if new is not None:
            f.name = new
    for node in all_nodes(model):
        new = mapping.get((node.domain, node.op_type, node.overload))
        if new is not None:
            node.op_type = new


def all_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node of the graph, of the functions, and of their bodies."""
    pending: list[onnx.NodeProto] = [*model.graph.node]
    for f in model.functions:
        pending.extend(f.node)
    while pending:
        node = pending.pop()
        yield node
        for sub in subgraphs(node):
            pending.extend(sub.node)


# a sharding spec's tensor named by its place among its node's inputs or outputs while onnx's
# inliner renames the node's tensors (NUL: no tensor name a model gives starts so)
_POSITION = "\x00graphopt.position:"


def inline_keeping_placements(model: onnx.ModelProto) -> onnx.ModelProto:
    """`onnx.inliner.inline_local_functions(model)` (a new model; `model` is not changed), with
    the device placements (`device_configurations`, IR 10) the inliner drops or leaves stale
    carried over. A placed call's placements go to the nodes put in its place that have none of
    their own (`_specialize_placed_calls`): the inliner dropped them, and a call placed on a
    configuration or pipeline stage left its nodes unplaced (merge then shared them with
    another model's unplaced twins). A function node's sharding spec names a tensor of the
    function: the inliner kept that name, which names nothing in the graph; it now names the
    tensor the inlined node reads or writes in that place."""
    from onnx import inliner

    if not any(node.device_configurations for node in all_nodes(model)):
        return inliner.inline_local_functions(model)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    _specialize_placed_calls(copy)
    for f in copy.functions:
        for node in _function_nodes(f):
            _mark_positions(node)
    inlined = inliner.inline_local_functions(copy)
    for node in all_nodes(inlined):
        _resolve_positions(node)
    return inlined


def _function_nodes(f: onnx.FunctionProto) -> Iterator[onnx.NodeProto]:
    """The nodes of function `f` and of the bodies inside them."""
    pending: list[onnx.NodeProto] = [*f.node]
    while pending:
        node = pending.pop()
        yield node
        for sub in subgraphs(node):
            pending.extend(sub.node)


def _specialize_placed_calls(model: onnx.ModelProto) -> None:
    """In place: each call of a local function that has placements calls a copy of the
    function (one per function and placements) whose top-level nodes without placements of
    their own take the call's (`_inherited`); calls inside the copies likewise, so a nested
    function's nodes take the placements of the call that placed theirs."""
    functions = {(f.domain, f.name, f.overload): f for f in model.functions}
    taken = {(f.domain, f.name) for f in model.functions}
    made: dict[tuple[FunctionKey, bytes], str] = {}
    pending = list(all_nodes(model))
    while pending:
        call = pending.pop()
        key = (call.domain, call.op_type, call.overload)
        function = functions.get(key)
        if function is None or not call.device_configurations:
            continue
        inherited = _inherited(call, function)
        data = b"".join(len(d).to_bytes(8, "little") + d for d in map(_serialized, inherited))
        name = made.get((key, data))
        if name is None:
            name = _fresh(function.domain, function.name + "_placed", taken)
            made[(key, data)] = name
            copy = model.functions.add()
            copy.CopyFrom(function)
            copy.name = name
            functions[(copy.domain, name, copy.overload)] = copy
            for inner in copy.node:
                if not inner.device_configurations:
                    inner.device_configurations.extend(_for_node(inherited, inner))
            pending.extend(_function_nodes(copy))
        call.op_type = name


def _serialized(message: onnx.NodeDeviceConfigurationProto) -> bytes:
    return message.SerializeToString(deterministic=True)


def _inherited(
    call: onnx.NodeProto, function: onnx.FunctionProto
) -> list[onnx.NodeDeviceConfigurationProto]:
    """`call`'s placements as the function's nodes take them: its configuration and pipeline
    stage, and its sharding specs of an input or output under the function's name for it (a
    spec of a tensor the call neither reads nor writes is dropped)."""
    names = dict(zip(call.output, function.output, strict=False))
    names.update(zip(call.input, function.input, strict=False))
    out = []
    for placed in call.device_configurations:
        copy = onnx.NodeDeviceConfigurationProto()
        copy.CopyFrom(placed)
        del copy.sharding_spec[:]
        for spec in placed.sharding_spec:
            formal = names.get(spec.tensor_name)
            if formal:
                copy.sharding_spec.add().CopyFrom(spec)
                copy.sharding_spec[-1].tensor_name = formal
        out.append(copy)
    return out


def _for_node(
    inherited: Sequence[onnx.NodeDeviceConfigurationProto], node: onnx.NodeProto
) -> list[onnx.NodeDeviceConfigurationProto]:
    """`inherited` placements with only the sharding specs of tensors `node` reads or writes."""
    tensors = {*node.input, *node.output} - {""}
    out = []
    for placed in inherited:
        copy = onnx.NodeDeviceConfigurationProto()
        copy.CopyFrom(placed)
        kept = [spec for spec in placed.sharding_spec if spec.tensor_name in tensors]
        del copy.sharding_spec[:]
        copy.sharding_spec.extend(kept)
        out.append(copy)
    return out


def _mark_positions(node: onnx.NodeProto) -> None:
    """Name each sharding spec's tensor by its place among `node`'s inputs or outputs
    (`_POSITION`), which the inliner keeps while it renames the tensors; a spec of a tensor
    the node neither reads nor writes is left as it is."""
    for placed in node.device_configurations:
        for spec in placed.sharding_spec:
            if spec.tensor_name in node.input:
                spec.tensor_name = f"{_POSITION}in:{list(node.input).index(spec.tensor_name)}"
            elif spec.tensor_name in node.output:
                spec.tensor_name = f"{_POSITION}out:{list(node.output).index(spec.tensor_name)}"


def _resolve_positions(node: onnx.NodeProto) -> None:
    """Name each sharding spec's tensor that `_mark_positions` named by its place as the
    inlined node names that tensor."""
    for placed in node.device_configurations:
        for spec in placed.sharding_spec:
            if spec.tensor_name.startswith(_POSITION):
                kind, index = spec.tensor_name.removeprefix(_POSITION).split(":")
                names = node.input if kind == "in" else node.output
                spec.tensor_name = names[int(index)]
