"""Local quantization error of every fusion group, all groups in one onnxruntime run per feed.

The measuring model holds the FP32 graph and, beside it, the quantized graph (`insert_qdq`)
whose every activation QuantizeLinear reads the *FP32* tensor instead of its quantized
neighbour's. Each quantized group then computes from exact inputs and adds only its own error
(its input activations and weights rounded to int8, and — target `onnxruntime` — its outputs'
requantization, which shows at the readers). For a group g with output tensors O_g (read
outside g, or graph outputs), over the feeds:

    nsr(g) = Σ_feeds Σ_{o∈O_g} ‖o_q − o‖² / Σ_feeds Σ_{o∈O_g} ‖o‖²

(the group's noise-to-signal ratio). Under the usual assumption that the groups' noise-to-signal
ratios add up at the outputs, the groups with the largest nsr are the ones to keep in float.
It costs about three FP32 inferences per feed and one session, where the per-group sensitivity
(`sensitivity.rank_groups`) costs one session and one inference per group and feed.

Not measured here: how much a group's noise is amplified on its way to the outputs (that is what
the full per-group search sees), nor clipping harm on inputs unlike the feeds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import onnx
from onnx import TensorProto, helper

from graphopt.ir import Graph
from graphopt.quant.collect import Feed, run_outputs
from graphopt.quant.placement import Plan
from graphopt.quant.qdq import ActivationQuant, insert_qdq

PREFIX = "graphopt_local/"


def measuring_model(
    model: onnx.ModelProto,
    placement: Plan,
    params: dict[str, ActivationQuant],
    group_members: dict[str, list[str]],
    keep_float: Collection[str] = (),
) -> tuple[onnx.ModelProto, list[tuple[str, str, str]]]:
    """FP32 graph + quantized copy fed by FP32 tensors; outputs per group output tensor the
    squared error and squared norm (scalars). Returns the model and (group, error output, norm
    output) triples."""
    quantized = insert_qdq(model, placement, params, set(keep_float))
    fp32 = {o for n in model.graph.node for o in n.output if o}
    fp32 |= {i.name for i in model.graph.input}
    produced = {o for n in quantized.graph.node for o in n.output if o}

    def renamed(t: str) -> str:
        return PREFIX + t if t in produced else t

    out = onnx.ModelProto()
    out.CopyFrom(model)
    have = {t.name for t in out.graph.initializer}
    out.graph.initializer.extend(t for t in quantized.graph.initializer if t.name not in have)
    for n in quantized.graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        copy.name = PREFIX + n.name
        inputs = [renamed(t) for t in n.input]
        if n.op_type == "QuantizeLinear" and n.input[0] in fp32:
            inputs[0] = n.input[0]  # exact input: only this group's rounding shows after it
        del copy.input[:]
        del copy.output[:]
        copy.input.extend(inputs)
        copy.output.extend(renamed(t) for t in n.output)
        out.graph.node.append(copy)

    graph = Graph(model)
    graph_outputs = {o.name for o in model.graph.output}
    measured: list[tuple[str, str, str]] = []
    for key, members in group_members.items():
        inside = set(members)
        for name in members:
            for o in graph.nodes[name].output:
                if not o or o not in produced:
                    continue  # not computed by the quantized copy
                readers = {r.name for r in graph.consumer_nodes(o)}
                if o not in graph_outputs and not readers - inside:
                    continue  # internal to the group
                base = f"graphopt_local_{len(measured)}"
                out.graph.node.extend(
                    [
                        helper.make_node("Sub", [PREFIX + o, o], [base + "_diff"]),
                        helper.make_node(
                            "ReduceSumSquare", [base + "_diff"], [base + "_err"], keepdims=0
                        ),
                        helper.make_node("ReduceSumSquare", [o], [base + "_norm"], keepdims=0),
                    ]
                )
                measured.append((key, base + "_err", base + "_norm"))
    out.graph.ClearField("output")
    out.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [])
        for _, err, norm in measured
        for name in (err, norm)
    )
    return out, measured


def local_ranking(
    model: onnx.ModelProto,
    placement: Plan,
    params: dict[str, ActivationQuant],
    group_members: dict[str, list[str]],
    samples: Iterable[Feed],
    keep_float: Collection[str] = (),
    threads: int = 0,
) -> list[tuple[str, float]]:
    """(group, local noise-to-signal ratio) for every group of `group_members`, worst first
    (ties in group order)."""
    probe, measured = measuring_model(model, placement, params, group_members, keep_float)
    if not measured:
        return [(key, 0.0) for key in group_members]
    err: dict[str, float] = dict.fromkeys(group_members, 0.0)
    norm: dict[str, float] = dict.fromkeys(group_members, 0.0)
    for values in run_outputs(probe, samples, threads):
        for key, e, n in measured:
            err[key] += float(values[e])
            norm[key] += float(values[n])
    nsr = {k: (err[k] / norm[k] if norm[k] > 0 else 0.0) for k in group_members}
    order = {k: i for i, k in enumerate(group_members)}
    return sorted(nsr.items(), key=lambda kv: (-kv[1], order[kv[0]]))
