"""Model-local functions of merged models: same-named functions that differ are renamed.

Two models may each define a local function under one (domain, name, overload) with different
bodies (two exports that both call their block `local:Block`). A model holds one function per
key, so `rename_clashing` gives the later model's function a fresh name (its task prefix in
front: `m1_Block`) and renames every call of it in that model: graph nodes, If/Loop/Scan
bodies, and the model's other functions. Functions equal byte for byte keep their name and are
stored once. `restore_names` gives a split task its functions' own names back. A clashing
function named as an op onnx or onnxruntime defines (com.microsoft:Gelu) is a `MergeError`:
onnxruntime runs its op for such a node, not the function, and would run the renamed function.

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
