"""Dead-code elimination: nodes whose outputs nobody reads, and unused initializers.

Does not touch graph inputs or outputs, nor nodes with side effects on state outside the
dataflow (none exist in standard ONNX inference graphs; ops from custom domains are kept only
when an output is read, like any other node), nor a constant (initializer or `Constant` node)
that a kept quantization annotation names as its scale or zero point: the annotation reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphopt.analysis.usedef import live_nodes
from graphopt.ir import Graph
from graphopt.ir.model_io import IR_NEEDS_INPUTS_FOR_INITIALIZERS
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass


@register_pass
@dataclass
class EliminateDeadCode(Pass):
    """Remove nodes none of whose outputs reach a graph output, then unused initializers.

    live(n) ⇔ ∃ output o of n: o ∈ graph outputs ∨ ∃ live consumer of o.
    Initializers that no live node (or subgraph) reads and that are not graph outputs are dropped,
    together with the graph-input entry old exporters add for them (IR < 4). From IR 4 on, an
    initializer that is also a graph input is an overridable default, part of the model's
    interface: it is kept. So is a constant a quantization annotation of a tensor that stays
    names (`quant_parameter_tensor_names`: SCALE_TENSOR, ZERO_POINT_TENSOR): no node reads
    it, but dropping it lost the scale, the annotation naming nothing.
    """

    name = "eliminate-dead-code"
    opt_level = 0
    keep_unused_initializers: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        outputs = set(graph.graph_outputs)
        live = live_nodes(graph, outputs)
        noted = _annotation_constants(graph, live, outputs)
        live.update(graph.producer[name] for name in noted if name in graph.producer)
        dead = [n for n in graph.nodes if n not in live]
        for name in dead:
            graph.remove_node(name)
        removed_inits = 0
        if not self.keep_unused_initializers:
            # IR < 4 lists every initializer as an input; an unset IR (0) reads as current
            ir = graph.model.ir_version
            inputs_are_interface = not 0 < ir < IR_NEEDS_INPUTS_FOR_INITIALIZERS
            for name in list(graph.initializers):
                if name in graph.consumers or name in outputs or name in noted:
                    continue
                if graph.is_graph_input(name):
                    if inputs_are_interface:
                        continue
                    graph.remove_graph_input(name)
                graph.remove_initializer(name)
                removed_inits += 1
        return PassResult(
            bool(dead or removed_inits), {"nodes": len(dead), "initializers": removed_inits}
        )


def _annotation_constants(graph: Graph, live: set[str], outputs: set[str]) -> set[str]:
    """The constants (initializers, `Constant` nodes' outputs) that the quantization
    annotations of tensors staying in `graph` (those of `live` nodes, graph inputs, read or
    output initializers) name as parameters; empty without annotations (read once)."""
    notes = graph.proto.quantization_annotation
    if not notes:
        return set()
    producer, consumers, initializers = graph.producer, graph.consumers, graph.initializers
    named: set[str] = set()
    for note in notes:
        tensor = note.tensor_name
        writer = producer.get(tensor)
        if writer is not None:
            stays = writer in live
        else:
            stays = (
                tensor in outputs
                or graph.is_graph_input(tensor)
                or any(reader in live for reader in consumers.get(tensor, ()))
            )
        if stays:
            named.update(entry.value for entry in note.quant_parameter_tensor_names)
    return {name for name in named if name in initializers or _is_constant_node(graph, name)}


def _is_constant_node(graph: Graph, tensor: str) -> bool:
    node = graph.producer_node(tensor)
    return node is not None and node.op_type == "Constant" and node.domain in ("", "ai.onnx")
