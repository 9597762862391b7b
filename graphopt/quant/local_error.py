"""Local quantization error of every fusion group, all groups in one onnxruntime run per feed.

The measuring model holds the FP32 graph and, beside it, the quantized graph (`insert_qdq`)
whose every activation QuantizeLinear reads the *FP32* tensor instead of its quantized
neighbour's. Each quantized group then computes from exact inputs and adds only its own error
(its input activations and weights rounded to int8, and — target `onnxruntime` — its outputs'
requantization, which shows at the readers). For a group g with output tensors O_g (read
outside g, or graph outputs), over the feeds:

    nsr(g) = Σ_feeds Σ_{o∈O_g} ‖o_q − o‖² / Σ_feeds Σ_{o∈O_g} ‖o‖²

(the group's noise-to-signal ratio). `local_measurements` adds to the same model, per depth
slice, a copy quantized in that slice only (sharing the FP32 nodes upstream of its first Q/DQ),
so one run on one feed gives every group's nsr and every slice's output error: the inputs of
`sensitivity.local_scores`, which scales nsr by the slice's measured gain (nsr alone is blind to
how much a group's noise grows on its way out). On ppocr_det at 640×640 the run costs about nine
FP32 inferences, where the per-group sensitivity (`sensitivity.rank_groups`) costs one session
and inference per group and feed (81 groups).

Not measured here: clipping harm on inputs unlike the feeds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import onnx
from onnx import TensorProto, helper

from graphopt.ir import Graph
from graphopt.quant.collect import Feed, run_outputs
from graphopt.quant.placement import Plan
from graphopt.quant.qdq import ActivationQuant, insert_qdq, types_if_float16

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
    out = onnx.ModelProto()
    out.CopyFrom(model)
    produced = _append_copy(
        out, insert_qdq(model, placement, params, set(keep_float)), PREFIX, True
    )

    graph = Graph(model)
    graph_outputs = {o.name for o in model.graph.output}
    types = types_if_float16(model)
    measured: list[tuple[str, str, str]] = []
    for key, members in group_members.items():
        inside = set(members)
        for name in members:
            for o in graph.nodes[name].output:
                if not o or PREFIX + o not in produced:
                    continue  # not computed by the quantized copy
                readers = {r.name for r in graph.consumer_nodes(o)}
                if o not in graph_outputs and not readers - inside:
                    continue  # internal to the group
                base = f"graphopt_local_{len(measured)}"
                exact, quantized = o, PREFIX + o
                if types.get(o, TensorProto.FLOAT) != TensorProto.FLOAT:
                    # sums of squares in float32: float16 ones overflow (65504) on activations
                    exact, quantized = base + "_exact", base + "_quantized"
                    out.graph.node.extend(
                        helper.make_node("Cast", [src], [dst], to=TensorProto.FLOAT)
                        for src, dst in ((o, exact), (PREFIX + o, quantized))
                    )
                out.graph.node.extend(
                    [
                        helper.make_node("Sub", [quantized, exact], [base + "_diff"]),
                        helper.make_node(
                            "ReduceSumSquare", [base + "_diff"], [base + "_err"], keepdims=0
                        ),
                        helper.make_node("ReduceSumSquare", [exact], [base + "_norm"], keepdims=0),
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
    nsr = _nsr(measured, run_outputs(probe, samples, threads), group_members)
    order = {k: i for i, k in enumerate(group_members)}
    return sorted(nsr.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def _append_copy(
    out: onnx.ModelProto, copy_of: onnx.ModelProto, prefix: str, exact_inputs: bool
) -> set[str]:
    """Append `copy_of`'s nodes (a rewrite of `out`'s original graph) to `out`, its tensors and
    new initializers renamed `prefix` + name; graph inputs and the original initializers are
    shared, and so is every node the rewrite left as it was with inputs computed as in FP32
    (the part upstream of the first Q/DQ runs once). `exact_inputs`: activation
    QuantizeLinears read the original FP32 tensors. Returns the renamed names of the tensors
    the copy computes."""
    fp32 = {o for n in out.graph.node for o in n.output if o}
    fp32 |= {i.name for i in out.graph.input}
    original = {t.name for t in out.graph.initializer}
    produced = {o for n in copy_of.graph.node for o in n.output if o}
    added = {t.name for t in copy_of.graph.initializer if t.name not in original}
    unchanged = {n.name: n for n in out.graph.node}
    shared: set[str] = set()  # tensors the copy computes exactly as the FP32 graph does

    def renamed(t: str) -> str:
        return prefix + t if (t in produced and t not in shared) or t in added else t

    for t in copy_of.graph.initializer:
        if t.name in added:
            init = onnx.TensorProto()
            init.CopyFrom(t)
            init.name = prefix + t.name
            out.graph.initializer.append(init)
    for n in copy_of.graph.node:
        same = unchanged.get(n.name)
        if (
            same is not None
            and same.op_type == n.op_type
            and list(same.input) == list(n.input)
            and list(same.output) == list(n.output)
            and all(renamed(t) == t for t in n.input)
        ):
            shared.update(t for t in n.output if t)  # upstream of any Q/DQ: reuse the FP32 node
            continue
        node = onnx.NodeProto()
        node.CopyFrom(n)
        node.name = prefix + n.name
        inputs = [renamed(t) for t in n.input]
        if exact_inputs and n.op_type == "QuantizeLinear" and n.input[0] in fp32:
            inputs[0] = n.input[0]  # exact input: only this group's rounding shows after it
        del node.input[:]
        del node.output[:]
        node.input.extend(inputs)
        node.output.extend(renamed(t) for t in n.output)
        out.graph.node.append(node)
    return {prefix + t for t in produced if t not in shared}


def local_measurements(
    model: onnx.ModelProto,
    placement: Plan,
    params: dict[str, ActivationQuant],
    group_members: dict[str, list[str]],
    slices: list[list[str]],
    feed: Feed,
    keep_float: Collection[str] = (),
    threads: int = 0,
) -> tuple[dict[str, float], Feed, list[Feed]]:
    """One run on `feed` of one model holding the FP32 graph, the local-error copy
    (`measuring_model`) and, per slice (a list of groups), a copy quantized in that slice only.
    Returns (group → local nsr, the FP32 outputs, the outputs of each slice's copy)."""
    probe, measured = measuring_model(model, placement, params, group_members, keep_float)
    outputs = [o.name for o in model.graph.output]
    slice_outputs = []
    for s, part in enumerate(slices):
        inside = set(part)
        floating = {m for g, ms in group_members.items() if g not in inside for m in ms}
        copy = insert_qdq(model, placement, params, set(keep_float) | floating)
        prefix = f"graphopt_slice{s}/"
        computed = _append_copy(probe, copy, prefix, False)
        # an output the slice leaves exactly as in FP32 is read from the FP32 graph
        slice_outputs.append([prefix + o if prefix + o in computed else o for o in outputs])
    typed = {o.name: o for o in model.graph.output}
    for name in outputs:
        probe.graph.output.append(typed[name])
    for names in slice_outputs:
        for name, original in zip(names, outputs, strict=True):
            if name == original:
                continue  # already an output
            vi = onnx.ValueInfoProto()
            vi.CopyFrom(typed[original])
            vi.name = name
            probe.graph.output.append(vi)
    (values,) = run_outputs(probe, [feed], threads)
    nsr = _nsr(measured, [values], group_members)
    reference = {o: values[o] for o in outputs}
    per_slice = [
        {o: values[n] for o, n in zip(outputs, names, strict=True)} for names in slice_outputs
    ]
    return nsr, reference, per_slice


def _nsr(
    measured: list[tuple[str, str, str]], runs: list[Feed], group_members: dict[str, list[str]]
) -> dict[str, float]:
    """Per group: Σ squared error / Σ squared norm over its measured outputs and the runs."""
    err: dict[str, float] = dict.fromkeys(group_members, 0.0)
    norm: dict[str, float] = dict.fromkeys(group_members, 0.0)
    for values in runs:
        for key, e, n in measured:
            err[key] += float(values[e])
            norm[key] += float(values[n])
    return {k: (err[k] / norm[k] if norm[k] > 0 else 0.0) for k in group_members}
