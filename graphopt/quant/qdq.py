"""Rewrite a model with explicit QuantizeLinear/DequantizeLinear nodes from a `Plan` and scales.

Activations: `x → QuantizeLinear(s, z) → DequantizeLinear(s, z) → readers`, one Q and one DQ per
tensor; the readers named by the plan (all readers, for the onnxruntime target, except nodes
kept in float) read the DQ output. Weights: int8, symmetric, per output channel,
`s_c = max|W_c| / 127`, `q = clip(round(W / s_c), -127, 127)`, stored as an int8 initializer read
through a DequantizeLinear with `axis`. Bias: float for TensorRT; for onnxruntime int32 with
`s = s_x · s_c` and zero point 0 (what QLinearConv wants).

Activation parameters (`ActivationQuant`):
- int8 symmetric: `s = amax / 127`, z = 0 (TensorRT, and the calibration cache).
- uint8 asymmetric: range `[lo, hi] = [max(min, -amax), min(max, amax)] ∪ {0}`,
  `s = (hi - lo) / 255`, `z = round(-lo / s)` (onnxruntime's CPU kernels).

Graph outputs keep their names, dtypes and shapes. Requires opset ≥ 13 (per-channel axis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from graphopt.errors import QuantizeError
from graphopt.ir import Graph
from graphopt.quant.placement import Plan

# smallest scale written; a tensor that was always zero quantizes exactly with any scale
_MIN_SCALE = np.float32(1e-12)


@dataclass(frozen=True)
class ActivationQuant:
    """Quantization parameters of one activation tensor."""

    scale: np.float32
    zero_point: int
    dtype: type  # np.int8 or np.uint8

    @classmethod
    def symmetric(cls, scale: float | np.floating) -> ActivationQuant:
        return cls(np.float32(max(np.float32(scale), _MIN_SCALE)), 0, np.int8)

    @classmethod
    def asymmetric(cls, lo: float, hi: float) -> ActivationQuant:
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if hi - lo <= 0:
            return cls(np.float32(1.0), 0, np.uint8)
        # floored like the symmetric scale: a range under ~1e-43 would round it to 0
        scale = max(np.float32((hi - lo) / 255.0), _MIN_SCALE)
        zero = int(np.clip(np.round(-lo / float(scale)), 0, 255))
        return cls(scale, zero, np.uint8)


def quantize_weight(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights (per channel on `axis`, or per tensor): (q, scales)."""
    w64 = w.astype(np.float64)
    if axis is None:
        amax = np.array(np.abs(w64).max() if w64.size else 0.0)
    else:
        reduce = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w64).max(axis=reduce) if reduce else np.abs(w64)
    scales = np.maximum(amax / 127.0, float(_MIN_SCALE)).astype(np.float32)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.clip(np.round(w64 / scales.astype(np.float64).reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


def insert_qdq(
    model: onnx.ModelProto,
    plan: Plan,
    params: dict[str, ActivationQuant],
    keep_float: set[str] | frozenset[str] = frozenset(),
) -> onnx.ModelProto:
    """A copy of `model` with Q/DQ inserted as `plan` says, activation parameters from `params`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = Graph(out)
    if graph.opset_version("") < 13:
        raise QuantizeError("Q/DQ insertion needs opset 13 or later; upgrade the model first")
    active = {n: p for n, p in plan.nodes.items() if n not in keep_float and n in graph.nodes}
    dq_of: dict[str, str] = {}

    def dequantized(tensor: str) -> str:
        if tensor in dq_of:
            return dq_of[tensor]
        q = params.get(tensor)
        if q is None:
            raise QuantizeError(f"no calibration range for tensor {tensor!r}")
        s = graph.add_initializer(f"{tensor}_scale", np.array(q.scale, np.float32))
        z = graph.add_initializer(f"{tensor}_zero_point", np.array(q.zero_point, q.dtype))
        qn = graph.make_node("QuantizeLinear", [tensor, s, z], 1, name=f"{tensor}_QuantizeLinear")
        dn = graph.make_node(
            "DequantizeLinear", [qn.output[0], s, z], 1, name=f"{tensor}_DequantizeLinear"
        )
        dq_of[tensor] = dn.output[0]
        return dn.output[0]

    # activations read by planned nodes (and, for onnxruntime, planned nodes' outputs)
    for name, p in active.items():
        node = graph.nodes[name]
        for i in p.activations:
            graph.set_input(node, i, dequantized(node.input[i]))
    if plan.target == "onnxruntime":
        for name, p in active.items():
            node = graph.nodes[name]
            for i in p.outputs:
                t = node.output[i]
                readers = [c for c in graph.consumer_nodes(t) if c.name not in keep_float]
                readers = [c for c in readers if not c.op_type.endswith("QuantizeLinear")]
                if not readers:
                    continue
                dq = dequantized(t)
                for c in readers:
                    for k, inp in enumerate(c.input):
                        if inp == t:
                            graph.set_input(c, k, dq)
        # consumers of a quantized tensor read the shared DQ (so its producer ends in one Q)
        for t, dq in list(dq_of.items()):
            for c in graph.consumer_nodes(t):
                if c.name in keep_float or c.op_type == "QuantizeLinear":
                    continue
                for k, inp in enumerate(c.input):
                    if inp == t:
                        graph.set_input(c, k, dq)
    # weights, biases and constant operands
    source_of = {dq: src for src, dq in dq_of.items()}  # DQ output → the float tensor
    weight_dq: dict[tuple[str, int | None], tuple[str, np.ndarray]] = {}  # shared weights
    for name, p in active.items():
        node = graph.nodes[name]
        w_scales = None
        for i, axis in p.weights.items():
            base = node.input[i]
            if (base, axis) in weight_dq:
                dq_out, w_scales = weight_dq[(base, axis)]
                graph.set_input(node, i, dq_out)
                continue
            value = graph.constant(base)
            if value is None:
                continue
            q, scales = quantize_weight(value, axis)
            w_scales = scales
            qw = graph.add_initializer(f"{base}_quantized", q)
            sw = graph.add_initializer(
                f"{base}_scale", scales if axis is not None else scales.reshape(())
            )
            zw = graph.add_initializer(
                f"{base}_zero_point", np.zeros(scales.shape if axis is not None else (), np.int8)
            )
            attrs: dict[str, Any] = {"axis": axis} if axis is not None else {}
            dn = graph.make_node(
                "DequantizeLinear", [qw, sw, zw], 1, name=f"{base}_DequantizeLinear", **attrs
            )
            graph.set_input(node, i, dn.output[0])
            weight_dq[(base, axis)] = (dn.output[0], scales)
        if plan.target == "onnxruntime" and p.bias is not None and w_scales is not None:
            x_param = params.get(source_of.get(node.input[0], node.input[0]))
            bias = graph.constant(node.input[p.bias])
            if x_param is not None and bias is not None and bias.ndim == 1:
                bscale = (np.float64(x_param.scale) * w_scales.astype(np.float64)).astype(
                    np.float32
                )
                if bscale.size == 1:
                    bscale = np.full(bias.shape, bscale.reshape(()), np.float32)
                if bscale.shape == bias.shape and np.all(bscale > 0):
                    qb = np.clip(np.round(bias.astype(np.float64) / bscale), -(2**31), 2**31 - 1)
                    base = node.input[p.bias]
                    bq = graph.add_initializer(f"{base}_quantized", qb.astype(np.int32))
                    bs = graph.add_initializer(f"{base}_scale", bscale)
                    bz = graph.add_initializer(f"{base}_zero_point", np.zeros(bias.shape, np.int32))
                    dn = graph.make_node(
                        "DequantizeLinear", [bq, bs, bz], 1, name=f"{base}_DequantizeLinear", axis=0
                    )
                    graph.set_input(node, p.bias, dn.output[0])
        for i in p.constants:
            value = graph.constant(node.input[i])
            if value is None or value.dtype != np.float32:
                continue
            param = ActivationQuant.asymmetric(float(value.min()), float(value.max()))
            if param.scale == 1.0 and param.zero_point == 0:
                continue
            qc = np.clip(np.round(value / param.scale) + param.zero_point, 0, 255).astype(np.uint8)
            base = node.input[i]
            cq = graph.add_initializer(f"{base}_quantized", qc)
            cs = graph.add_initializer(f"{base}_scale", np.array(param.scale, np.float32))
            cz = graph.add_initializer(f"{base}_zero_point", np.array(param.zero_point, np.uint8))
            dn = graph.make_node(
                "DequantizeLinear", [cq, cs, cz], 1, name=f"{base}_DequantizeLinear"
            )
            graph.set_input(node, i, dn.output[0])
    _drop_unused_initializers(graph)
    return graph.commit()


def _drop_unused_initializers(graph: Graph) -> None:
    used = {t for n in graph for t in graph.node_inputs(n)} | set(graph.graph_outputs)
    for name in list(graph.initializers):
        if name not in used and name not in graph.graph_inputs:
            graph.remove_initializer(name)
