"""Reconcile opset imports and IR versions of models about to be merged into one graph.

The merged model imports, per domain, the highest version any model imports. A model on a lower
default-domain opset is kept as is when none of its ops changed meaning between the two versions
(same schema `since_version`), in its graph and its local functions; otherwise it is converted
with `onnx.version_converter` (its local functions inlined first: the converter drops them; the
calls' device placements carried to the inlined nodes, `functions.inline_keeping_placements`), and a
failed conversion, or one onnxruntime cannot load where it loads the model, is a `MergeError`
naming the model and the versions. Other domains are only raised to the highest version when
every op of the domain keeps its schema. A custom domain without schemas is raised only for a
model that calls none of its ops (its model-local functions aside): nothing tells whether they
mean the same at the other version, so a model calling them at a lower version than another
model's is a `MergeError`.

What it does not do: lower any model's opset, or convert a local function without inlining it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence

import onnx

from graphopt.errors import OpsetConversionError
from graphopt.ir import subgraphs
from graphopt.ir.model_io import IR_NEEDS_INPUTS_FOR_INITIALIZERS
from graphopt.ir.opset_conversion import convert_opset
from graphopt.multitask.errors import MergeError
from graphopt.multitask.functions import inline_keeping_placements

log = logging.getLogger("graphopt.multitask")


def canonical_domain(name: str) -> str:
    """The default domain as "" (it may be spelled "ai.onnx"); other domains as they are."""
    return "" if name in ("", "ai.onnx") else name


def spell_default_domain(model: onnx.ModelProto) -> None:
    """Spell the default domain "" in `model`'s opset imports and on its nodes (bodies
    included; functions keep their own imports), as the merged model imports it."""
    for o in model.opset_import:
        if o.domain == "ai.onnx":
            o.domain = ""
    for node in _all_nodes(model.graph):
        if node.domain == "ai.onnx":
            node.domain = ""


def opset_map(model: onnx.ModelProto) -> dict[str, int]:
    return {canonical_domain(o.domain): o.version for o in model.opset_import}


def _all_nodes(graph: onnx.GraphProto | onnx.FunctionProto) -> Iterator[onnx.NodeProto]:
    """The nodes of `graph` (a graph or a function body) and of the bodies inside them."""
    for node in graph.node:
        yield node
        for sub in subgraphs(node):
            yield from _all_nodes(sub)


def _every_node(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """The nodes of the graph and of the model-local functions, bodies included."""
    yield from _all_nodes(model.graph)
    for f in model.functions:
        yield from _all_nodes(f)


def since_version(op: str, version: int, domain: str) -> int | None:
    """The `since_version` of the schema of `op` (of `domain`) at opset `version`; None for an
    op onnx has no schema for there. Also graphopt.multitask.merge's (the report's
    `newer_schemas`)."""
    try:
        return int(onnx.defs.get_schema(op, version, domain).since_version)
    except onnx.defs.SchemaError:
        return None


def unchanged_between(model: onnx.ModelProto, domain: str, old: int, new: int) -> bool:
    """True when every op of `domain` in `model` has the same schema at `old` and `new`."""
    return _same_schemas(_all_nodes(model.graph), domain, old, new)


def _same_schemas(nodes: Iterable[onnx.NodeProto], domain: str, old: int, new: int) -> bool:
    """True when every op of `domain` among `nodes` has the same schema at `old` and `new`."""
    for node in nodes:
        if canonical_domain(node.domain) != domain:
            continue
        before, after = (
            since_version(node.op_type, old, domain),
            since_version(node.op_type, new, domain),
        )
        if before is None or before != after:
            return False
    return True


def _functions_unchanged(model: onnx.ModelProto, new: int) -> bool:
    """True when every default-domain op in `model`'s local functions has the same schema at
    the default opset the function imports and at `new` (the merged model's, which onnx
    requires function imports to be compatible with)."""
    for f in model.functions:
        old = {canonical_domain(o.domain): o.version for o in f.opset_import}.get("")
        if old is None or old == new:
            continue
        if not _same_schemas(_all_nodes(f), "", old, new):
            return False
    return True


def reconcile(
    models: Sequence[onnx.ModelProto], names: Sequence[str]
) -> tuple[list[onnx.ModelProto], dict[str, int], int]:
    """Bring `models` onto common opsets; return them, the opset imports and the IR version."""
    target: dict[str, int] = {}
    for model in models:
        for domain, version in opset_map(model).items():
            target[domain] = max(target.get(domain, 0), version)
    out = []
    for model, name in zip(models, names, strict=True):
        own = opset_map(model)
        old = own.get("", target.get("", 0))
        if (
            "" in target
            and old < target[""]
            and not (
                unchanged_between(model, "", old, target[""])
                and _functions_unchanged(model, target[""])
            )
        ):
            model = _convert(model, name, old, target[""])
        for domain, version in own.items():
            if domain == "" or version == target[domain]:
                continue
            functions = {(f.domain, f.name) for f in model.functions}
            ops = [
                n
                for n in _every_node(model)
                if canonical_domain(n.domain) == domain and (n.domain, n.op_type) not in functions
            ]
            known = any(since_version(n.op_type, version, domain) for n in ops)
            if known and not unchanged_between(model, domain, version, target[domain]):
                raise MergeError(
                    f"{name}: uses domain {domain!r} at version {version}, other models at "
                    f"{target[domain]}, and its ops changed between them; convert it first"
                )
            if ops and not known:
                raise MergeError(
                    f"{name}: calls {ops[0].op_type!r} of domain {domain!r} at version "
                    f"{version}, other models import it at {target[domain]}, and no schema "
                    "says whether its ops mean the same there; merge it separately"
                )
        out.append(model)
    imports = dict(sorted(target.items()))
    opset_ids = [onnx.helper.make_opsetid(d, v) for d, v in imports.items()]
    # at least IR 4: the merged graph lists no initializer as an input (IR < 4 needs them all)
    ir = max(IR_NEEDS_INPUTS_FOR_INITIALIZERS, *(m.ir_version for m in models))
    with contextlib.suppress(TypeError, ValueError):  # unknown domain: keep the highest
        ir = max(ir, onnx.helper.find_min_ir_version_for(opset_ids, ignore_unknown=True))
    return out, imports, ir


def _convert(model: onnx.ModelProto, name: str, old: int, new: int) -> onnx.ModelProto:
    log.info("%s: converting from opset %d to %d", name, old, new)
    if model.functions:  # the converter drops local functions: their calls are converted inline
        model = inline_keeping_placements(model)  # (the inliner dropped a call's placements)
    try:
        converted = convert_opset(model, new)
    except OpsetConversionError as e:
        why = (
            f"would change what it computes ({e.reason})"
            if e.kind == "misconverted"
            else f"failed: {e.reason}"
        )
        raise MergeError(
            f"{name}: needs default opset {new} to merge (it uses {old}) and "
            f"onnx.version_converter {why}; convert it yourself or merge it separately"
        ) from e
    problem = _runtime_problem(converted, model)
    if problem:  # (the merged model was written, exit 0, and no session could run it)
        raise MergeError(
            f"{name}: needs default opset {new} to merge (it uses {old}) and onnxruntime cannot "
            f"load it converted ({problem}); merge it separately"
        )
    return converted


def _runtime_problem(converted: onnx.ModelProto, original: onnx.ModelProto) -> str:
    """Why onnxruntime cannot make a session of `converted` where it makes one of `original`
    ("" when it can, or when it cannot make either: not the conversion's doing). onnxruntime
    1.32 has no kernel for some ops' newest versions: a MaxRoiPool-1 or GlobalLpPool-2 model
    merged with an opset 23 one became MaxRoiPool-22 / GlobalLpPool-22, a merged model it
    could not load."""
    from graphopt.backends.onnxruntime import session
    from graphopt.errors import BackendError

    try:
        session(converted, level="disable")
        return ""
    except BackendError as e:
        problem = str(e).removeprefix("onnxruntime cannot load the model: ")
    try:
        session(original, level="disable")
    except BackendError:
        return ""
    return problem
