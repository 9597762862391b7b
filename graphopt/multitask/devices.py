"""Device configurations (`ModelProto.configuration`, IR 10) of merged models.

A model may declare named device configurations (a name, a device count, the devices) that its
nodes' `device_configurations` refer to by `configuration_id` (sharding, pipeline stages).
The merged model declares each once: configurations equal byte for byte keep their name; one
that differs from an earlier model's configuration of the same name is renamed in its model
(its task prefix in front: `m1_cfg`), and so is every reference of its nodes to it (bodies and
local functions included), by `rename_clashing`. `merged` lists them all, in the models' order;
`restore` gives a split task its own configurations back, under their own names.

What it does not do: check that a node's reference names a declared configuration (onnx does
not), or drop a configuration no node refers to (the model declared it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx

from graphopt._text import fresh_name
from graphopt.multitask.functions import all_nodes


def rename_clashing(
    protos: Sequence[onnx.ModelProto], prefixes: Sequence[str]
) -> list[list[tuple[str, str]]]:
    """Rename, in place, each configuration that differs from an earlier model's configuration
    of the same name, and the references of that model's nodes to it. Returns per model the
    renames made, as (new name, old name) pairs."""
    seen: dict[str, bytes] = {}
    taken = {c.name for p in protos for c in p.configuration}
    renames: list[list[tuple[str, str]]] = []
    for proto, prefix in zip(protos, prefixes, strict=True):
        mapping: dict[str, str] = {}
        for config in proto.configuration:
            data = config.SerializeToString(deterministic=True)
            if seen.get(config.name, data) != data:
                mapping[config.name] = fresh_name(prefix + config.name, taken)
        if mapping:
            rename(proto, mapping)
        for config in proto.configuration:
            seen.setdefault(config.name, config.SerializeToString(deterministic=True))
        renames.append([(new, old) for old, new in mapping.items()])
    return renames


def merged(protos: Sequence[onnx.ModelProto]) -> list[onnx.DeviceConfigurationProto]:
    """The configurations of `protos` (after `rename_clashing`), each name once, in order."""
    out: dict[str, onnx.DeviceConfigurationProto] = {}
    for proto in protos:
        for config in proto.configuration:
            out.setdefault(config.name, config)
    return list(out.values())


def own_names(proto: onnx.ModelProto, renames: Sequence[tuple[str, str]]) -> dict[str, str]:
    """{own name: merged name} of `proto`'s configurations, in its order (`renames`: its
    (new, old) pairs from `rename_clashing`, which already gave `proto` the new names)."""
    old_of = dict(renames)
    return {old_of.get(c.name, c.name): c.name for c in proto.configuration}


def restore(model: onnx.ModelProto, names: Mapping[str, str], *, own: bool) -> None:
    """Declare in `model` (split from a merged model) only the configurations of the task whose
    `names` ({own name: merged name}) the task table records; with `own`, under their own names,
    the references of the nodes renamed along."""
    declared = {c.name: c for c in model.configuration}
    kept = []
    for merged_name in names.values():
        config = declared.get(merged_name)
        if config is None:
            continue
        copy = onnx.DeviceConfigurationProto()
        copy.CopyFrom(config)
        kept.append(copy)
    del model.configuration[:]
    model.configuration.extend(kept)
    if own:
        rename(model, {m: o for o, m in names.items() if o != m})


def rename(model: onnx.ModelProto, mapping: Mapping[str, str]) -> None:
    """Rename configurations and the node references to them, in place (each name once:
    two may swap)."""
    if not mapping:
        return
    for config in model.configuration:
        config.name = mapping.get(config.name, config.name)
    for node in all_nodes(model):
        for placed in node.device_configurations:
            placed.configuration_id = mapping.get(placed.configuration_id, placed.configuration_id)
