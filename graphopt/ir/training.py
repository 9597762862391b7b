"""Keep the tensors a model's `training_info` reads or binds through optimization.

ONNX's TrainingInfoProto (IR ≥ 7) refers to the inference graph by name: its `algorithm` and
`initialization` graphs may read the inference graph's inputs, initializers and node outputs,
and `update_binding` / `initialization_binding` name the initializers training assigns. No pass
looks at training_info, so a fold rewrote or dropped them (Conv + BN folded away a mean that an
update binding names; the result still passed onnx.checker).

`pin_training_names` makes each such tensor one no pass may touch, for the length of a run:
an initializer becomes a temporary graph input (overridable: no pass folds, merges, rewrites or
drops it) and a node's output a temporary graph output (no pass renames or removes it, nor fuses
its producer away). `unpin_training_names` takes those temporary entries out of the result.
Names that are graph inputs or outputs already stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from graphopt.errors import LoadError
from graphopt.ir.graph import outer_references


@dataclass
class Pinned:
    """The graph inputs and outputs `pin_training_names` added (by name)."""

    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inputs or self.outputs)


def training_names(model: onnx.ModelProto) -> set[str]:
    """Names of the inference graph that the model's training_info reads or binds."""
    names: set[str] = set()
    for info in model.training_info:
        for binding in (*info.initialization_binding, *info.update_binding):
            names.add(binding.key)
        for g in (info.algorithm, info.initialization):
            # a declared input named like an inference-graph tensor is that tensor
            names |= outer_references(g) | {i.name for i in g.input}
    names.discard("")
    return names


def pin_training_names(model: onnx.ModelProto, where: str = "") -> Pinned:
    """Make the inference-graph tensors training_info reads or binds temporary graph inputs
    (initializers) or outputs (node outputs), in place; what was added, for `unpin`.
    LoadError when a node output it reads has no known type (a graph output needs one),
    naming `where` (how load's errors name the model: its path, ...) when given."""
    pinned = Pinned()
    if not model.training_info:
        return pinned
    graph = model.graph
    wanted = training_names(model)
    inputs = {i.name for i in graph.input}
    outputs = {o.name for o in graph.output}
    for init in graph.initializer:
        name = init.name
        if name in wanted and name not in inputs:
            graph.input.append(
                onnx.helper.make_tensor_value_info(name, init.data_type, list(init.dims))
            )
            inputs.add(name)
            pinned.inputs.append(name)
    produced = [out for node in graph.node for out in node.output if out in wanted]
    untyped = [name for name in produced if name not in outputs]
    if untyped:
        types = _declared_types(model)
        for name in dict.fromkeys(untyped):
            info = types.get(name)
            if info is None:
                prefix = f"{where}: " if where else ""
                raise LoadError(
                    f"{prefix}training_info reads tensor {name!r} of the inference graph, whose "
                    "type is not known: declare it in graph.value_info, or optimize a copy "
                    "without training_info (del model.training_info[:])"
                )
            graph.output.append(info)
            pinned.outputs.append(name)
    return pinned


def unpin_training_names(model: onnx.ModelProto, pinned: Pinned) -> None:
    """Remove the temporary graph inputs and outputs `pin_training_names` added, in place."""
    if not pinned:
        return
    graph = model.graph
    for kind, names in ((graph.input, set(pinned.inputs)), (graph.output, set(pinned.outputs))):
        if names:
            kept = [v for v in kind if v.name not in names]
            del kind[:]
            kind.extend(kept)


def _declared_types(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """value_info (declared, else ONNX's inference without data) by tensor name, typed ones."""
    typed = {v.name: v for v in model.graph.value_info if v.type.WhichOneof("value") is not None}
    if all(n in typed for node in model.graph.node for n in node.output):
        return typed
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model)
    del skeleton.training_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton).graph.value_info
    except Exception:  # onnx's own error kinds: no types beyond the declared ones
        return typed
    for v in inferred:
        if v.name not in typed and v.type.WhichOneof("value") is not None:
            typed[v.name] = v
    return typed
