"""Extract the subgraph that computes some outputs of a model (the inverse of `merge`).

    split(M, O) = the nodes of M that some o ∈ O depends on, with only the inputs,
                  initializers (sparse too), opset imports, functions and value_info they use

`outputs` may name graph outputs or any intermediate tensor. With `task=PREFIX` on a model
written by `merge`, the outputs (and the original input and output names) come from the task
table `merge` stores in the metadata, so `split(merge([a, b]), task="m0_")` gives back a model
with a's interface. An output that is an `Identity` of a tensor nothing else in the kept graph
reads is collapsed (the producer writes the output directly), which undoes the Identity `merge`
adds for outputs computed by shared nodes. A task output that was the task's input itself
(merged as an `Identity` of the merged input) is that input again. A task gets back its own IR
version and the opsets its ops are written for (its own, or the one merge converted it to)
where the split part's ops mean the same there, not the merged model's highest, and its own
device configurations (IR 10), not the other tasks'.

The model's `training_info` is kept where it still applies: an entry whose algorithm (or
initialization) reads a tensor the split model dropped goes, and of the others the bindings of
dropped initializers go (an entry then binding nothing goes too); a warning says which. They
named tensors that no longer existed (onnx.checker does not look).

With `task` (and no `strip_prefix`), the task's tensors and main-graph nodes get back the names
its own model gave them where merge named them otherwise (a shared one has the first model's
name, a clashing one the prefix), as the task table records them.

What it does not do: prune unused outputs of a kept multi-output node, rename tensors other
than the chosen outputs without `task`, or give back a node that repeats another of the task's
model (same op, attributes and inputs: merge computes it once) or an initializer no node of the
task read (merge keeps none). Constants of one value the task held under two names come back
under both (merge keeps them apart).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import onnx

from graphopt._options import (
    check_flag,
    given_text,
    refuse_extra_positionals,
    refuse_unknown_options,
)
from graphopt._text import shown
from graphopt.analysis.usedef import live_nodes
from graphopt.errors import OptionError
from graphopt.ir import Graph, load_model, outer_references, subgraphs
from graphopt.ir.graph import scope_names
from graphopt.ir.io_names import as_text, require_text_io_names
from graphopt.ir.model_io import IR_NEEDS_INPUTS_FOR_INITIALIZERS, ModelLike
from graphopt.multitask import devices, dim_params
from graphopt.multitask.errors import MergeError, check_model
from graphopt.multitask.functions import restore_names
from graphopt.multitask.merge import METADATA_KEY, prefixes_named, task_table
from graphopt.multitask.opsets import canonical_domain, opset_map, unchanged_between

log = logging.getLogger("graphopt.multitask")


def split(
    model: ModelLike,
    outputs: Sequence[str] | None = None,
    *more: Any,
    task: str | None = None,
    strip_prefix: str | None = None,
    check: bool = True,
    **unknown: Any,
) -> onnx.ModelProto:
    """The part of `model` that computes `outputs` (or the outputs of merge task `task`).

    `outputs`: a list of tensor names. `strip_prefix`: remove this prefix from the chosen
    output names (some must start with it). With `task`, inputs and outputs, and the local
    functions merge renamed, get back the names they had in the task's own model unless
    `strip_prefix` is given: then the inputs and functions keep their merged names, and
    `strip_prefix=""` keeps the outputs' merged names too (the task's part of the merged model
    as it is named there; without `task`, "" renames nothing and is refused). The task's
    metadata props, doc string, producer name and version, domain, model_version, graph name,
    graph doc string and graph metadata props, input shapes and device configurations come back
    either way (where merge recorded them; the configurations under their merged names with
    `strip_prefix`).

    Arguments it does not take (one name as `outputs`, names one by one as positional
    arguments, an unknown option, an option of the wrong type) are an `OptionError` naming the
    argument and what it takes.
    """
    _refuse_more_positionals(outputs, more)
    refuse_unknown_options("split", unknown, SPLIT_OPTIONS)
    outputs = _output_names(outputs)
    for option, value in (("task", task), ("strip_prefix", strip_prefix)):
        if value is not None and not isinstance(value, str):
            raise OptionError(f"{option} must be a string, got {given_text(value)}")
    check_flag("check", check)
    proto = load_model(model)
    where = shown(model) if isinstance(model, str | os.PathLike) else "the model"
    require_text_io_names(proto, where, MergeError)
    renames: dict[str, str] = {}
    input_renames: dict[str, str] = {}
    aliases: dict[str, str] = {}  # task input → the task input it was merged with
    inputs: list[str] | None = None
    if task is not None:
        entry = _task_entry(proto, task)
        chosen = list(entry["outputs"].values())
        inputs = list(entry["inputs"].values())
        if outputs:
            raise MergeError("give either outputs or task to split, not both")
        if strip_prefix is None:
            renames = {merged: orig for orig, merged in entry["outputs"].items()}
            for orig, merged in entry["inputs"].items():
                if merged in input_renames:  # a second input mapped to one merged input
                    aliases[orig] = input_renames[merged]
                else:
                    input_renames[merged] = orig
    elif outputs:
        chosen = list(dict.fromkeys(outputs))
    else:
        raise MergeError("split needs the outputs to keep (or a task of a merged model)")
    _refuse_idle_strip_prefix(strip_prefix, chosen, task)
    if strip_prefix:
        renames = {o: o[len(strip_prefix) :] for o in chosen if o.startswith(strip_prefix)}
        nameless = [o for o, new in renames.items() if not new]
        if nameless:  # the checker's "Field 'name' of 'value_info' is required", said later
            raise MergeError(
                f"strip prefix {strip_prefix!r} leaves output {nameless[0]!r} with no name"
            )
    result = _extract(proto, chosen, inputs)
    # an output renamed to the name an input gets is that input (merge wrote a task output that
    # was the task's input as an Identity of it); an alias input is made one after its rename
    final = {i.name: input_renames.get(i.name, i.name) for i in result.graph.input}
    for output, name in list(renames.items()):
        source = next((i for i, n in final.items() if n == name), None)
        if source is not None and _output_reads_input(result, output, source):
            del renames[output]
    moved = _rename_interface(
        result, renames, input_renames, aliases, list(entry["inputs"]) if task is not None else ()
    )
    merged_versions = None
    if task is not None:
        _restore_metadata(result, proto, entry)
        _restore_model_fields(result, entry)
        _restore_imports(result, entry)
        merged_versions = _restore_versions(result, entry)
        _restore_input_shapes(result, entry, by_own_name=strip_prefix is None)
        _restore_input_notes(result, entry, by_own_name=strip_prefix is None)
        devices.restore(result, entry.get("configurations", {}), own=strip_prefix is None)
    if task is not None and strip_prefix is None:
        _name_shared_outputs(result, entry)
        _restore_own_names(result, entry, moved)
        dim_params.rename(result.graph, entry.get("dim_params", {}))
        restore_names(result, entry.get("functions", []))
        outputs_named = {o.name for o in result.graph.output}
        for alias, of in aliases.items():  # output alias = Identity(of): the alias input now
            if alias in outputs_named:
                _output_reads_input(result, alias, of, declared=True)
    if check:
        try:
            check_model(result, "split")
        except MergeError:
            if merged_versions is None:
                raise
            _set_versions(result, *merged_versions)  # the task's own versions fail: as merged
            check_model(result, "split")
    return result


SPLIT_OPTIONS = ("outputs", "task", "strip_prefix", "check")


def _refuse_idle_strip_prefix(strip_prefix: str | None, chosen: list[str], task: object) -> None:
    """An `OptionError` for a `strip_prefix` that renames no output: '' without `task` (with
    it, '' keeps the merged model's names), or a prefix no chosen output starts with; either
    returned the model as if the names had been stripped (the CLI refused both for
    `--outputs`, the API neither)."""
    if strip_prefix is None:
        return
    if not strip_prefix:
        if task is None:
            raise OptionError(
                "strip_prefix='' renames no output; leave it out (with task, '' keeps the "
                "merged model's names)"
            )
        return
    if not any(o.startswith(strip_prefix) for o in chosen):
        some = ", ".join(map(shown, chosen[:5])) + (", ..." if len(chosen) > 5 else "")
        raise OptionError(f"strip_prefix={strip_prefix!r}: no kept output starts with it ({some})")


def _refuse_more_positionals(outputs: object, more: Sequence[object]) -> None:
    """An `OptionError` for positional arguments past `outputs` (Python's TypeError "takes
    from 1 to 2 positional arguments"): tensor names given one by one (`split(m, "a", "b")`)
    are told to come as one list, anything else to go by name."""
    if not more:
        return
    names = [outputs, *more]
    hint = ""
    if all(isinstance(n, str) for n in names):
        hint = f"pass the outputs as one list: split(model, {names!r})"
    refuse_extra_positionals("split", more, ("model", "outputs"), hint)


def _output_names(outputs: object) -> list[str] | None:
    """`outputs` as a list of names; else an `OptionError` (a string was a list of its
    letters: "no tensor named 't', 'r', 'a', ...", a number "'int' object is not iterable")."""
    if outputs is None:
        return None
    if isinstance(outputs, str):
        raise OptionError(
            f"outputs must be a list of tensor names, got the string {outputs!r}; pass "
            f"[{outputs!r}]"
        )
    if isinstance(outputs, bytes | bytearray | Mapping) or not isinstance(outputs, Iterable):
        raise OptionError(f"outputs must be a list of tensor names, got {given_text(outputs)}")
    names = list(outputs)
    wrong = next((o for o in names if not isinstance(o, str)), None)
    if wrong is not None:
        raise OptionError(f"outputs must be tensor names (strings), got {given_text(wrong)}")
    return names


def _task_entry(model: onnx.ModelProto, task: str) -> Mapping[str, Any]:
    table = task_table(model)
    if not table:
        raise MergeError("the model has no task table: it was not written by graphopt merge")
    named = prefixes_named(task, table)
    if len(named) > 1:  # ("a_" and "a__": the first was taken, whichever was meant)
        raise MergeError(
            f"task {task!r} names {len(named)} tasks ({', '.join(map(shown, named))}); give the "
            "whole prefix"
        )
    if named:
        return table[named[0]]
    raise MergeError(f"no task {task!r} in the merged model; tasks: {', '.join(map(shown, table))}")


def _restore_input_shapes(
    model: onnx.ModelProto, entry: Mapping[str, Any], *, by_own_name: bool
) -> None:
    """Declare the task's inputs with the shapes the task's own model gave them (merge met
    them with other models' static dims: a dynamic batch became 1). The value_info goes then:
    it may state the other models' static dims for the tensors they share with the task.
    `by_own_name`: the inputs have their own names back (else their merged names)."""
    shapes = entry.get("input_shapes") or {}
    if not shapes:
        return
    if by_own_name:
        wanted = dict(shapes)
    else:  # a merged input read as two of the task's inputs: their shapes may differ, skip
        merged_of = dict(entry["inputs"])
        counts: dict[str, int] = {}
        for merged in merged_of.values():
            counts[merged] = counts.get(merged, 0) + 1
        wanted = {merged_of[k]: v for k, v in shapes.items() if counts[merged_of[k]] == 1}
    restored = False
    for vi in model.graph.input:
        if vi.name not in wanted or not vi.type.HasField("tensor_type"):
            continue
        tensor = vi.type.tensor_type
        dims = wanted[vi.name]
        tensor.ClearField("shape")
        if dims is not None:
            shape = tensor.shape
            shape.SetInParent()  # a rank-0 shape is a shape too
            for d in dims:
                dim = shape.dim.add()
                if isinstance(d, int):
                    dim.dim_value = d
                elif isinstance(d, str):
                    dim.dim_param = d
        restored = True
    if restored:
        del model.graph.value_info[:]


def _restore_input_notes(
    model: onnx.ModelProto, entry: Mapping[str, Any], *, by_own_name: bool
) -> None:
    """Give the task's inputs the doc strings and metadata props its own model declared where
    merge recorded them (the merged input has the first model's: another task's came back).
    `by_own_name`: the inputs have their own names back (else their merged names; a merged
    input read as two of the task's inputs is left as it is)."""
    notes = entry.get("input_notes") or {}
    if not by_own_name:
        merged_of = dict(entry["inputs"])
        merged = list(merged_of.values())
        notes = {merged_of[k]: v for k, v in notes.items() if merged.count(merged_of[k]) == 1}
    for vi in model.graph.input:
        note = notes.get(vi.name)
        if note is None:
            continue
        vi.ClearField("doc_string")  # (proto2: "" assigned is a field set, unlike the model's)
        if note["doc_string"]:
            vi.doc_string = note["doc_string"]
        del vi.metadata_props[:]
        for key, value in note["metadata_props"].items():
            vi.metadata_props.add(key=key, value=value)


def _restore_metadata(
    result: onnx.ModelProto, merged: onnx.ModelProto, entry: Mapping[str, Any]
) -> None:
    """The task's own metadata props and doc string, as merge recorded them; props of the
    merged model no task had (added after the merge) are kept, other tasks' are not. A task
    table without them (written before they were recorded) leaves the merged model's."""
    own = entry.get("metadata_props")
    if own is None:
        return
    others: set[str] = set()
    for task in task_table(merged).values():
        others |= set(task.get("metadata_props", {})) | set(task.get("metadata_moved", {}))
    props = dict(own)
    for p in result.metadata_props:
        if p.key not in others and p.key not in props:
            props[p.key] = p.value
    del result.metadata_props[:]
    onnx.helper.set_model_props(result, props)
    result.doc_string = entry.get("doc_string", "")


def _restore_versions(
    result: onnx.ModelProto, entry: Mapping[str, Any]
) -> tuple[int, dict[str, int]] | None:
    """Give the task back its own IR version and the opsets its ops are written for, as merge
    recorded them (the merged model imports the highest of each: a task of IR 7, opset 12 came
    back as IR 10, opset 17). A domain goes back only where every op of it in the split part
    has the same schema at both versions; the IR no lower than those opsets need, nor than 4
    (merge lists no initializer as an input). Returns the merged IR and opsets, for the caller
    to put back should the checker refuse the task's own; None where nothing changed (a table
    from before H219)."""
    own = entry.get("opset_import")
    if own is None:
        return None
    merged = (result.ir_version, opset_map(result))
    imports = dict(merged[1])
    for domain, version in merged[1].items():
        mine = own.get(domain)
        if mine is not None and mine < version and unchanged_between(result, domain, mine, version):
            imports[domain] = mine
    ir = max(int(entry.get("ir_version", 0)), IR_NEEDS_INPUTS_FOR_INITIALIZERS)
    opset_ids = [onnx.helper.make_opsetid(d, v) for d, v in imports.items()]
    with contextlib.suppress(TypeError, ValueError):  # an unknown domain: no floor from it
        ir = max(ir, onnx.helper.find_min_ir_version_for(opset_ids, ignore_unknown=True))
    ir = min(ir, merged[0])
    if (ir, imports) == merged:
        return None
    _set_versions(result, ir, imports)
    return merged


def _restore_own_names(
    result: onnx.ModelProto, entry: Mapping[str, Any], moved: Mapping[str, str]
) -> None:
    """Give the task's tensors and main-graph nodes back the names its own model gave them,
    as merge recorded them ("tensor_names", "node_names": merged → own; a shared one had the
    first model's name, a clashing one the task's prefix), all at once (two names may swap).
    A name that would then be taken twice stays merged: two sibling bodies (an If's
    branches) may define one name, which the check here, over every scope, does not allow.
    `moved`: the tensors the interface's renames moved out of their way (merged → now)."""
    g = result.graph
    present = scope_names(g)
    # a name the interface has now is the task's own input or output name, never a merged
    # tensor the table names (that one was moved out of its way, or is not kept): m2's own
    # output t2 took the name of m0's shared Sigmoid output t2, which m2 called t23, and came
    # back as t23
    interface = {vi.name for vi in (*g.input, *g.output)}
    tensors = {
        moved.get(m, m): o
        for m, o in (entry.get("tensor_names") or {}).items()
        if m in moved or m not in interface
    }
    tensors = {m: o for m, o in tensors.items() if m in present}
    tensors = _unclashing(tensors, present)
    if tensors:
        _rename_everywhere(g, tensors)
    named = {n.name for n in g.node if n.name}
    nodes = _unclashing({m: o for m, o in (entry.get("node_names") or {}).items()}, named)
    for node in g.node:
        node.name = nodes.get(node.name, node.name)


def _name_shared_outputs(result: onnx.ModelProto, entry: Mapping[str, Any]) -> None:
    """Give a task output that merge computed by a shared node, and that the task's nodes
    read too, its own name back on the tensor: merge named it by an Identity of the shared
    tensor (node named as the merged output), which `_collapse_output_identities` keeps where
    other nodes read that tensor, so b of r = Relu(x), s = Sigmoid(r), outputs r and s, merged
    with a's t = Relu(x), came back as t = Relu(x), s = Sigmoid(t), r = Identity(t). The
    shared tensor takes the output's name and the Identity goes; not for a graph input or
    output (an output that was the task's input is that input already)."""
    g = result.graph
    merged_of = {own: merged for own, merged in entry["outputs"].items()}
    outputs = {o.name for o in g.output}
    fixed = {i.name for i in g.input} | outputs
    renames: dict[str, str] = {}
    drop = []
    for node in g.node:
        if (
            node.op_type != "Identity"
            or node.domain not in ("", "ai.onnx")
            or len(node.input) != 1
            or len(node.output) != 1
        ):
            continue
        src, dst = node.input[0], node.output[0]
        if dst not in outputs or node.name != merged_of.get(dst) or src in fixed:
            continue
        if src in renames:  # (two outputs of one shared tensor: the first takes it)
            continue
        renames[src] = dst
        drop.append(node)
    if not renames:
        return
    for node in drop:
        g.node.remove(node)
    for vi in list(g.value_info):  # (the output declares the type)
        if vi.name in renames:
            g.value_info.remove(vi)
    noted = {a.tensor_name for a in g.quantization_annotation}
    for note in list(g.quantization_annotation):  # the output's own, or the shared one's
        if note.tensor_name in renames and renames[note.tensor_name] in noted:
            g.quantization_annotation.remove(note)
    _rename_everywhere(g, renames)


def _unclashing(renames: Mapping[str, str], names: AbstractSet[str]) -> dict[str, str]:
    """`renames` (of `names`) less those that would give two of `names` one name."""
    kept = {old: new for old, new in renames.items() if old in names}
    while True:
        finals = Counter(kept.get(n, n) for n in names)
        clashing = {old for old, new in kept.items() if finals[new] > 1}
        if not clashing:
            return kept
        log.debug("split: names kept merged (their own would clash): %s", sorted(clashing)[:5])
        kept = {old: new for old, new in kept.items() if old not in clashing}


def _restore_imports(result: onnx.ModelProto, entry: Mapping[str, Any]) -> None:
    """Give the task back the opset imports its own model had that its ops do not use (the
    extraction keeps those of the domains called): at the versions merge recorded, in the
    model's order, before any other. Nothing where merge recorded none (before H219)."""
    own = entry.get("opset_import")
    if not own:
        return
    present = {canonical_domain(o.domain): o for o in result.opset_import}
    imports = []
    for domain, version in own.items():
        kept = present.pop(domain, None)
        imports.append(onnx.helper.make_opsetid(domain, int(version)) if kept is None else kept)
    imports += present.values()
    del result.opset_import[:]
    result.opset_import.extend(imports)


def _set_versions(result: onnx.ModelProto, ir: int, imports: Mapping[str, int]) -> None:
    """Set `result`'s IR version and the versions of the domains it imports."""
    result.ir_version = ir
    for o in result.opset_import:
        o.version = imports.get(canonical_domain(o.domain), o.version)


def _restore_model_fields(result: onnx.ModelProto, entry: Mapping[str, Any]) -> None:
    """The task's own producer, domain, model_version, graph name, graph doc string and graph
    metadata props, as merge recorded them (`MODEL_FIELDS`), for the merged model's
    (graphopt's producer, the prefixes as graph name). A table from before they were recorded
    leaves the producer, graph name and graph metadata props as merged (the other fields are
    the merged model's defaults there)."""
    if "producer_name" in entry:
        result.producer_name = entry["producer_name"]
        result.producer_version = entry.get("producer_version", "")
    if "graph_name" in entry:
        result.graph.name = entry["graph_name"]
    result.domain = entry.get("domain", "")
    result.model_version = entry.get("model_version", 0)
    result.graph.doc_string = entry.get("graph_doc_string", "")
    if "producer_name" in entry:  # recorded with the fields above: a task without them had none
        del result.graph.metadata_props[:]
        for key, value in entry.get("graph_metadata_props", {}).items():
            result.graph.metadata_props.add(key=key, value=value)


def _extract(
    model: onnx.ModelProto, outputs: Sequence[str], inputs: Sequence[str] | None = None
) -> onnx.ModelProto:
    """The model `outputs` need. `inputs`: the graph inputs to declare, in this order (a task's
    inputs, read or not); by default those the kept nodes read, in the model's order."""
    graph = Graph(model)
    known = set(graph.producer) | set(graph.graph_inputs) | set(graph.initializers)
    missing = [o for o in outputs if o not in known]
    if missing:
        available = ", ".join(map(shown, graph.graph_outputs[:12]))
        raise MergeError(
            f"no tensor named {', '.join(map(repr, missing))} in the model; graph outputs: {available}"
        )
    keep = live_nodes(graph, outputs)
    read = set(outputs).union(*(graph.node_inputs(graph.nodes[name]) for name in keep))
    # the quantization annotations of the tensors kept, and the weights they name (a scale,
    # a zero point: kept though no node reads them, or the annotation named nothing)
    notes = [a for a in model.graph.quantization_annotation if a.tensor_name in read]
    weights = {t.name for t in model.graph.initializer}
    weights |= {t.values.name for t in model.graph.sparse_initializer}
    named = {p.value for a in notes for p in a.quant_parameter_tensor_names} & weights
    kept = read | named
    nodes = [n for n in model.graph.node if n.name in keep]
    out_types = _output_types(model, outputs)
    declared = {vi.name: vi for vi in model.graph.input}
    order = [n for n in dict.fromkeys(inputs or ()) if n in declared]
    order += [n for n in declared if n in kept and n not in order]
    new_graph = onnx.helper.make_graph(
        nodes,
        as_text(model.graph.name),  # (not UTF-8: bytes, which make_graph cannot set)
        [declared[n] for n in order],
        [out_types[o] for o in outputs],
        initializer=[t for t in model.graph.initializer if t.name in kept],
        sparse_initializer=[t for t in model.graph.sparse_initializer if t.values.name in kept],
        value_info=[
            vi for vi in model.graph.value_info if vi.name in read and vi.name not in set(outputs)
        ],
    )
    new_graph.doc_string = as_text(model.graph.doc_string)
    # make_graph takes neither the graph's own metadata props (IR 10) nor the annotations
    new_graph.metadata_props.extend(model.graph.metadata_props)
    new_graph.quantization_annotation.extend(notes)
    called = _called_ops(model, nodes)
    used_domains = {""} | {canonical_domain(domain) for domain, _ in called}
    result = onnx.ModelProto()
    result.CopyFrom(model)
    result.graph.CopyFrom(new_graph)
    del result.opset_import[:]
    result.opset_import.extend(
        o for o in model.opset_import if canonical_domain(o.domain) in used_domains
    )
    del result.functions[:]
    result.functions.extend(f for f in model.functions if (f.domain, f.name) in called)
    props = {  # as text: bytes (not UTF-8) are what set_model_props cannot set
        as_text(p.key): as_text(p.value) for p in model.metadata_props if p.key != METADATA_KEY
    }
    del result.metadata_props[:]
    onnx.helper.set_model_props(result, props)
    _prune_training_info(result, model)
    return result


def _prune_training_info(result: onnx.ModelProto, source: onnx.ModelProto) -> None:
    """Keep of `result`'s training_info (copied from `source`) what the split graph can still
    run: an entry whose algorithm or initialization reads a tensor of `source`'s graph that
    `result` dropped goes whole; of the others, the bindings (initialization_binding,
    update_binding) of initializers `result` dropped go, and an entry left binding nothing goes.
    A name `source` did not define either (a label the training feeds) is no reason. Each
    removal is one warning."""
    if not result.training_info:
        return
    before, after = _graph_names(source.graph), _graph_names(result.graph)
    weights = {t.name for t in result.graph.initializer}
    weights |= {t.values.name for t in result.graph.sparse_initializer}
    kept: list[onnx.TrainingInfoProto] = []
    for k, info in enumerate(result.training_info):
        reads: set[str] = set()
        for g in (info.algorithm, info.initialization):
            reads |= outer_references(g) | {i.name for i in g.input}
        gone = sorted((reads & before) - after)
        if gone:
            log.warning(
                "split: training_info[%d] dropped: it reads %s, which the split model does not "
                "compute or hold",
                k,
                ", ".join(map(shown, gone[:3])) + (", ..." if len(gone) > 3 else ""),
            )
            continue
        had = len(info.initialization_binding) + len(info.update_binding)
        pruned: list[str] = []
        for bindings in (info.initialization_binding, info.update_binding):
            stale = [b for b in bindings if b.key not in weights]
            for b in stale:
                pruned.append(b.key)
                bindings.remove(b)
        if pruned and not (info.initialization_binding or info.update_binding):
            log.warning(
                "split: training_info[%d] dropped: it binds only initializers the split model "
                "dropped (%s)",
                k,
                ", ".join(map(shown, pruned[:3])) + (", ..." if len(pruned) > 3 else ""),
            )
            continue
        if pruned:
            log.warning(
                "split: training_info[%d] pruned: %d of its %d bindings named initializers the "
                "split model dropped (%s)",
                k,
                len(pruned),
                had,
                ", ".join(map(shown, pruned[:3])) + (", ..." if len(pruned) > 3 else ""),
            )
        kept.append(info)
    if len(kept) != len(result.training_info):
        copies = [onnx.TrainingInfoProto() for _ in kept]
        for copy, info in zip(copies, kept, strict=True):
            copy.CopyFrom(info)
        del result.training_info[:]
        result.training_info.extend(copies)


def _graph_names(graph: onnx.GraphProto) -> set[str]:
    """The tensors `graph` holds or computes at its top level: inputs, initializers (sparse
    ones by their values' name) and node outputs."""
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    names |= {t.values.name for t in graph.sparse_initializer}
    names.update(o for node in graph.node for o in node.output)
    names.discard("")
    return names


def _called_ops(model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto]) -> set[tuple[str, str]]:
    """(domain, op_type) of what `nodes` (and their bodies) call, and of what the model's local
    functions among those call in turn: a function called only from another is kept too."""
    functions = {(f.domain, f.name): f for f in model.functions}
    called = {(n.domain, n.op_type) for n in _walk(nodes)}
    work = [key for key in called if key in functions]
    while work:
        for n in _walk(list(functions[work.pop()].node)):
            key = (n.domain, n.op_type)
            if key not in called:
                called.add(key)
                if key in functions:
                    work.append(key)
    return called


def _walk(nodes: Sequence[onnx.NodeProto]) -> list[onnx.NodeProto]:
    out = []
    for n in nodes:
        out.append(n)
        for sub in subgraphs(n):
            out.extend(_walk(list(sub.node)))
    return out


def _output_types(model: onnx.ModelProto, outputs: Sequence[str]) -> dict[str, onnx.ValueInfoProto]:
    g = model.graph
    found: dict[str, onnx.ValueInfoProto] = {}
    for vi in [*g.output, *g.value_info, *g.input]:
        if vi.name in outputs and vi.name not in found and vi.type.WhichOneof("value"):
            found[vi.name] = vi
    for t in g.initializer:
        if t.name in outputs and t.name not in found:
            found[t.name] = onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
    missing = [o for o in outputs if o not in found]
    if missing:
        inferred = _inferred(model).graph
        for vi in [*inferred.value_info, *inferred.output]:
            if vi.name in missing and vi.name not in found:
                found[vi.name] = vi
    still = [o for o in outputs if o not in found]
    if still:
        raise MergeError(
            f"cannot tell the type of tensor(s) {', '.join(map(shown, still))}; run shape inference"
        )
    return found


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with the value_info onnx's shape inference gives it (not strict). A model over
    2 GiB, which infer_shapes cannot take in memory (protobuf's EncodeError, a traceback from
    split --outputs of a tensor without a declared type), is inferred from a temporary copy
    with external data (its weights are not read back)."""
    from graphopt.ir.model_io import _over_two_gib

    if not _over_two_gib(model):
        return onnx.shape_inference.infer_shapes(model, strict_mode=False)
    from graphopt.ir.model_io import temporary_file_with_external_data

    with temporary_file_with_external_data(model) as path:
        onnx.shape_inference.infer_shapes_path(str(path), str(path))
        return onnx.load(str(path), load_external_data=False)


def _output_reads_input(
    model: onnx.ModelProto, output: str, graph_input: str, *, declared: bool = False
) -> bool:
    """Make graph output `output`, an `Identity` of graph input `graph_input` (what merge
    writes for a task output that is the task's input directly: the two had one name), that
    input itself: the Identity goes, and what read `output` reads `graph_input` (with
    `declared`, `output` is an input too, an alias of `graph_input` holding the same value,
    and keeps its name). False (nothing changed) when `output` is computed otherwise."""
    g = model.graph
    for node in g.node:
        if output in node.output:
            if (
                node.op_type != "Identity"
                or node.domain not in ("", "ai.onnx")
                or list(node.input) != [graph_input]
                or graph_input not in {i.name for i in g.input}
            ):
                return False
            g.node.remove(node)
            if not declared:
                _rename_everywhere(g, {output: graph_input})
            return True
    return False


def _rename_interface(
    model: onnx.ModelProto,
    outputs: Mapping[str, str],
    inputs: Mapping[str, str],
    aliases: Mapping[str, str] | None = None,
    order: Sequence[str] = (),
) -> dict[str, str]:
    """Rename the chosen inputs and outputs. A tensor inside the model that already has a name
    they get back (a shared node's output another task named so) is renamed out of the way.
    `aliases`: input name → the (renamed) input it was merged with; each is declared again,
    with that input's type (read by nothing: the task's model read the two as one value, which
    is what `merge`'s input_map promised); `order`: the task's input names, in its order.
    Returns the tensors moved out of the way (their name → the one they have now)."""
    g = model.graph
    aliases = aliases or {}
    renames = {
        **{k: v for k, v in inputs.items() if k != v},
        **{k: v for k, v in outputs.items() if k != v},
    }
    interface = {i.name for i in g.input} | {o.name for o in g.output}
    targets = set(renames.values()) | set(aliases)
    defined = scope_names(g) | {vi.name for vi in g.value_info}
    taken = defined | targets
    for target in sorted(targets):
        if target in renames or target not in defined:
            continue  # free, or freed by its own rename
        if target in interface:
            raise MergeError(
                f"cannot rename back to {[target]}: the name is taken in the split model"
            )
        k = 1
        while f"{target}_{k}" in taken:
            k += 1
        renames[target] = f"{target}_{k}"
        taken.add(renames[target])
    _rename_everywhere(g, renames)
    for info in model.training_info:  # it names the inference graph's tensors too
        for bindings in (info.initialization_binding, info.update_binding):
            for b in bindings:
                b.key = renames.get(b.key, b.key)
        for body in (info.algorithm, info.initialization):
            _rename_everywhere(body, renames)
    if aliases:
        _declare_aliases(g, aliases, order)
    _collapse_output_identities(model)
    return {old: new for old, new in renames.items() if old in targets and old not in interface}


def _declare_aliases(
    graph: onnx.GraphProto, aliases: Mapping[str, str], order: Sequence[str]
) -> None:
    """Declare each alias as an input of the type of the input it names; the inputs in the
    task's `order` (inputs it does not name after them, as they were)."""
    declared = {vi.name: onnx.ValueInfoProto() for vi in graph.input}
    for vi in graph.input:
        declared[vi.name].CopyFrom(vi)
    for alias, of in aliases.items():
        declared[alias] = onnx.ValueInfoProto()
        declared[alias].CopyFrom(declared[of])
        declared[alias].name = alias
    names = [n for n in order if n in declared]
    names += [n for n in declared if n not in set(names)]
    del graph.input[:]
    graph.input.extend(declared[name] for name in names)


def _rename_everywhere(graph: onnx.GraphProto, renames: Mapping[str, str]) -> None:
    """Apply `renames` to every name `graph` and its bodies define or read (names are unique
    across scopes, so one substitution serves them all)."""
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        vi.name = renames.get(vi.name, vi.name)
    for t in graph.initializer:
        t.name = renames.get(t.name, t.name)
    for sparse in graph.sparse_initializer:
        sparse.values.name = renames.get(sparse.values.name, sparse.values.name)
    for note in graph.quantization_annotation:
        note.tensor_name = renames.get(note.tensor_name, note.tensor_name)
        for param in note.quant_parameter_tensor_names:
            param.value = renames.get(param.value, param.value)
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name in renames:
                node.input[j] = renames[name]
        for j, name in enumerate(node.output):
            if name in renames:
                node.output[j] = renames[name]
        for sub in subgraphs(node):
            _rename_everywhere(sub, renames)


def _collapse_output_identities(model: onnx.ModelProto) -> None:
    """Identity(t) → output, with t produced by a node (a Constant too) or an initializer and
    read by nothing else: the producer writes the output directly, or the initializer is the
    output (a task's output that is a constant of its model came back as an Identity of a
    tensor of another name, 'm0_y' of its twin in a model merged with itself, or 'c_1')."""
    g = model.graph
    outputs = {o.name for o in g.output}
    inputs = {i.name for i in g.input} | {t.name for t in g.initializer}
    inputs |= {t.values.name for t in g.sparse_initializer}
    readers: dict[str, int] = {}
    for node in g.node:
        names = set(node.input)
        for sub in subgraphs(node):
            names |= outer_references(sub)
        for name in names:
            readers[name] = readers.get(name, 0) + 1
    producer = {o: n for n in g.node for o in n.output}
    # an initializer no graph input names (merge writes a task output that is its model's
    # initializer as an Identity of it)
    weights = {t.name: t for t in g.initializer if t.name not in {i.name for i in g.input}}
    drop = []
    for node in g.node:
        if node.op_type != "Identity" or node.domain not in ("", "ai.onnx"):
            continue
        src, dst = node.input[0], node.output[0]
        if dst not in outputs or src in outputs or readers.get(src, 0) != 1:
            continue
        prod_node = producer.get(src)
        if src in weights and prod_node is None:
            weights[src].name = dst
        elif src in inputs or prod_node is None or any(True for _ in subgraphs(prod_node)):
            continue
        else:
            for j, name in enumerate(prod_node.output):
                if name == src:
                    prod_node.output[j] = dst
        drop.append(node)
        for vi in list(g.value_info):
            if vi.name == src:
                g.value_info.remove(vi)
        # an annotation of src (merge keeps each task's: a shared tensor's own and the
        # output's) names dst now, or goes where dst has its own
        noted = {a.tensor_name for a in g.quantization_annotation}
        for note in list(g.quantization_annotation):
            if note.tensor_name == src:
                if dst in noted:
                    g.quantization_annotation.remove(note)
                else:
                    note.tensor_name = dst
    for node in drop:
        g.node.remove(node)
