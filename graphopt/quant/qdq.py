"""Rewrite a model with explicit QuantizeLinear/DequantizeLinear nodes from a `Plan` and scales.

Activations: `x → QuantizeLinear(s, z) → DequantizeLinear(s, z) → readers`, one Q and one DQ per
tensor; the readers named by the plan (all readers, for the onnxruntime target, except nodes
kept in float) read the DQ output. Weights: int8, symmetric, per channel on the plan's axis
(the output channels; a ConvTranspose's input channels for TensorRT), `s_c = max|W_c| / 127`,
`q = clip(round(W / s_c), -127, 127)`, stored as an int8 initializer read through a
DequantizeLinear with `axis`; with `Plan.weight_max` 64 (quantize's `reduce_range`)
`s_c = max|W_c| / 64` and q in [-64, 64], what onnxruntime's `quantize_static(...,
reduce_range=True)` makes of a symmetric int8 weight (`REDUCED_WEIGHT_MAX`). Bias: float for TensorRT; for onnxruntime int32 with
`s = s_x · s_c` and zero point 0 (what QLinearConv wants), where `s_c` is first raised to at
least `|b_c| / (s_x · 2³⁰)` so that the int32 bias fits (a channel whose weights are tiny next
to its bias: pruned, or ~1e-26 as trained; `quantize_weight` bounds the error). The floor
holds for TensorRT's float bias too: onnxruntime, which runs that model as well, makes the same
int32 bias itself (WeightBiasQuantization) and saturates it where it overflows. A weight other
nodes read too is not raised (the bound holds only for the node whose bias raises it): on
both targets the node whose floor raises a scale reads its own quantized copy of the weight,
raised, and the other readers keep amax / 127 (one more int8 copy of that weight in the file).
Except:
- `|b / (s_x · s_c)| > 2³¹ − 1` all the same: clipping would change the result, and a float
  bias does not help (onnxruntime converts it to the same int32 when it fuses QLinearConv),
  so the whole node stays float (logged);
- the floor itself beyond float32 (a huge bias behind an input whose scale is ~0: 1e36 at
  s_x = 1e-12 needs s_c ≈ 9e38), or a bias holding NaN or infinity: a weight scale of inf
  dequantizes to NaN (0·inf), so the whole node stays float (logged);
- a Gemm with `alpha ≠ 1` or `beta ≠ 1` (`Y = α·A·B + β·C`): an int32 bias at `s_x · s_c`
  is the accumulator's term only for α = β = 1, so the bias stays float (onnxruntime then
  leaves the Gemm unfused and exact);
- a float16 layer keeps its float bias (onnxruntime makes its int32 form in float16
  arithmetic: its floor keeps b / (s_x · s_c) within float16, `_bias_floor`).
A node whose weight is empty, not float or not finite stays float; such a constant operand of
Add/Mul is read as it is.

Float16 tensors (placement decides whether to quantize them): QuantizeLinear takes float16
input, and DequantizeLinear returns float16, only from opset 19 on, where the scale has the
input's type. There their scales are float16, rounded up (never down, so amax still maps to
at most 127) and floored at 2⁻²⁴; under opset 19 no valid Q/DQ exists for them and
`insert_qdq` refuses with a `QuantizeError` naming the tensor.

Activation parameters (`ActivationQuant`):
- int8 symmetric: `s = amax / 127`, z = 0 (TensorRT, and the calibration cache).
- uint8 asymmetric: range `[lo, hi] = [max(min, -amax), min(max, amax)] ∪ {0}`,
  `s = (hi - lo) / 255`, `z = round(-lo / s)` (onnxruntime's CPU kernels).

Graph outputs keep their names, dtypes and shapes. Requires opset ≥ 13 (per-channel axis).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from graphopt._text import type_name
from graphopt.errors import QuantizeError
from graphopt.ir import Graph
from graphopt.ir.nodes import subgraphs
from graphopt.ir.training import training_names
from graphopt.quant.placement import NodePlan, Plan

log = logging.getLogger("graphopt.quant")

# smallest scale written; a tensor that was always zero quantizes exactly with any scale
_MIN_SCALE = np.float32(1e-12)
_MIN_SCALE_FP16 = np.float16(2.0**-24)  # the smallest positive float16 (subnormal)
_INT32_MAX = 2**31 - 1
# The largest |q| of an int8 weight: 127 (symmetric int8), or with quantize's `reduce_range`
# 64, as onnxruntime's quantizer reduces it (quant_utils.ONNX_INT_TYPE_REDUCED_RANGE, INT8:
# (-64, 64); symmetric, so s = max|W| / 64, zero point 0). Why: on x86 without VNNI (AVX2,
# AVX-512 BW) onnxruntime's u8·s8 kernels (QLinearConv, QLinearMatMul: what it fuses a Q/DQ
# Conv or MatMul into at ORT_ENABLE_EXTENDED and ALL) add two products in 16 bits
# (vpmaddubsw), 255·127·2 > 32767 saturates, 255·64·2 = 32640 does not.
FULL_WEIGHT_MAX = 127
REDUCED_WEIGHT_MAX = 64
FLOAT16_QDQ_OPSET = 19  # QuantizeLinear-19 / DequantizeLinear-19 accept float16
WeightKey = tuple[str, int | None, str]  # (weight, axis, "" or the node owning its own copy)


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


def scale_as(scale: Any, dtype: type, what: str = "a float16 tensor") -> np.ndarray:
    """`scale` (float32 values) stored as `dtype`: float32 as is; float16 rounded up to the next
    representable value (rounding down would map amax past 127) and floored at 2⁻²⁴.

    A scale beyond float16's largest value (65504) is a QuantizeError naming `what`: rounded
    up it is inf, and a Q/DQ at scale inf dequantizes every value to 0·inf = NaN. (No float16
    tensor needs more than 65504 / 127; a calibration cache can still give more.)"""
    s32 = np.asarray(scale, np.float32)
    if dtype is np.float32:
        return s32
    largest = np.finfo(np.float16).max
    if np.any(s32 > largest):  # (65504, 65520) rounds to 65504, then up to inf
        raise QuantizeError(
            f"{what} is float16 and its scale {float(s32.max()):.6g} is beyond float16's "
            f"largest value ({float(largest):g}): no float16 Q/DQ holds it (a float16 tensor "
            f"needs at most {float(largest) / 127:.4g}; a calibration cache written for another "
            "model?)"
        )
    s16 = s32.astype(np.float16)
    with np.errstate(over="ignore"):  # (np.where computes 65504's successor, inf, unused)
        up = np.nextafter(s16, np.float16(np.inf))
    s16 = np.where(s16.astype(np.float32) < s32, up, s16)
    return np.maximum(s16, _MIN_SCALE_FP16).astype(np.float16)


def quantize_weight(
    w: np.ndarray,
    axis: int | None,
    scale_dtype: type = np.float32,
    bias_floor: np.ndarray | None = None,
    weight_max: int = FULL_WEIGHT_MAX,
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights (per channel on `axis`, or per tensor): (q, scales), scales in
    `scale_dtype` (float32, or float16 for a float16 weight) and q computed from them, q in
    [-weight_max, weight_max] (127; `REDUCED_WEIGHT_MAX` for `reduce_range`), s = amax /
    weight_max.

    `bias_floor` (one value per scale, or per tensor its largest): a scale below it is raised
    to it, so that the int32 bias b / (s_x·s_w) fits (onnxruntime's quantizer does the same:
    `_adjust_weight_scale_for_int32_bias`). With floor = |b| / (s_x·2³⁰) the raise adds at
    most K·|x|·s_w/2 ≤ K·255/2³¹·|b| to the channel's output (K inputs per output, |x| ≤
    255·s_x): under one int8 step of a range ≥ |b| for K < 65000. It applies only where the
    bias is far larger than what the weights add (pruned or ~1e-26 channels, ~0 inputs)."""
    w64 = w.astype(np.float64)
    if axis is None:
        amax = np.array(np.abs(w64).max(initial=0.0))
    else:
        reduce = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w64).max(axis=reduce, initial=0.0) if reduce else np.abs(w64)
    scale64 = np.maximum(amax / float(weight_max), float(_MIN_SCALE))
    # an all-zero channel (pruned) quantizes exactly at any scale: without a floor (a weight
    # several nodes read) it takes the tensor's largest (1/weight_max when all are zero), not 1e-12,
    # whose s_x·s_w puts a bias's int32 form (onnxruntime's, of a float bias behind Q/DQ, or
    # ours) far beyond int32
    zero = amax == 0
    if bias_floor is None and np.any(zero):
        largest = scale64.max() if not np.all(zero) else 1.0 / weight_max
        scale64 = np.where(zero, largest, scale64)
    if bias_floor is not None:
        floor = bias_floor.astype(np.float64)
        if floor.shape != amax.shape:
            floor = np.array(floor.max(initial=0.0))
        scale64 = np.maximum(scale64, floor)
    scales = scale_as(scale64.astype(np.float32), scale_dtype)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.round(w64 / scales.astype(np.float64).reshape(shape))
    return np.clip(q, -weight_max, weight_max).astype(np.int8), scales


def insert_qdq(
    model: onnx.ModelProto,
    plan: Plan,
    params: dict[str, ActivationQuant],
    keep_float: set[str] | frozenset[str] = frozenset(),
    stayed_float: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """A copy of `model` with Q/DQ inserted as `plan` says, activation parameters from `params`.

    Nodes in `keep_float` stay float (and the plan's `raw_readers` read no DQ output); so does
    a node whose weight int8 cannot represent (empty, NaN or infinity) or whose int32 bias would
    overflow (onnxruntime fuses a float bias into QLinearConv as int32 itself, so only an
    unquantized node keeps that bias exact): those go into `stayed_float` (node → why) when it
    is given, and are logged at debug level (a search calls this many times; the caller
    reports them once)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = Graph(out)
    opset = graph.opset_version("")
    if opset < 13:
        raise QuantizeError("Q/DQ insertion needs opset 13 or later; upgrade the model first")
    skip = set(keep_float) | plan.raw_readers  # (they read no DQ: `Plan.raw_readers`)
    planned = {n: p for n, p in plan.nodes.items() if n not in skip and n in graph.nodes}
    types = types_if_float16(model)
    # constants first: a node whose weights or bias cannot be quantized stays float entirely
    # (tensor, axis, "") → (q, scales), or (tensor, axis, node) for a node's own copy
    weights: dict[WeightKey, tuple[np.ndarray, np.ndarray]] = {}
    biases: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # node → (int32 bias, its scale)
    trained = training_names(model)  # replaced by their int8 forms, they would dangle
    for name, p in planned.items():
        reason = _trained_constant(graph.nodes[name], p, plan.target, trained) or (
            _quantize_constants(
                graph, name, p, params, plan.target, opset, weights, biases, plan.weight_max
            )
        )
        if reason is not None:
            log.debug("%s: node %r stays float", reason, name)
            if stayed_float is not None:
                stayed_float[name] = reason
            skip.add(name)
    active = {n: p for n, p in planned.items() if n not in skip}
    dq_of: dict[str, str] = {}

    def dequantized(tensor: str) -> str:
        if tensor in dq_of:
            return dq_of[tensor]
        q = params.get(tensor)
        if q is None:
            raise QuantizeError(f"no calibration range for tensor {tensor!r}")
        elem = types.get(tensor, onnx.TensorProto.FLOAT)
        what = f"activation {tensor!r}"
        scale = scale_as(q.scale, _scale_dtype(elem, opset, what), what)
        s = graph.add_initializer(f"{tensor}_scale", scale)
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
                readers = [c for c in graph.consumer_nodes(t) if c.name not in skip]
                readers = [c for c in readers if not c.op_type.endswith("QuantizeLinear")]
                # (an If/Loop whose body reads t keeps reading t: no DQ is made for it alone)
                readers = [c for c in readers if t in c.input]
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
                if c.name in skip or c.op_type == "QuantizeLinear":
                    continue
                for k, inp in enumerate(c.input):
                    if inp == t:
                        graph.set_input(c, k, dq)
    # weights, biases and constant operands
    weight_dq: dict[WeightKey, str] = {}  # a shared weight gets one DQ
    for name, p in active.items():
        node = graph.nodes[name]
        for i, axis in p.weights.items():
            base = node.input[i]
            key = (base, axis, name) if (base, axis, name) in weights else (base, axis, "")
            if key not in weights:
                continue  # not a constant (an overridable default): read as it is
            if key not in weight_dq:
                q, scales = weights[key]
                qw = graph.add_initializer(f"{base}_quantized", q)
                sw = graph.add_initializer(
                    f"{base}_scale", scales if axis is not None else scales.reshape(())
                )
                zw = graph.add_initializer(
                    f"{base}_zero_point",
                    np.zeros(scales.shape if axis is not None else (), np.int8),
                )
                attrs: dict[str, Any] = {"axis": axis} if axis is not None else {}
                dn = graph.make_node(
                    "DequantizeLinear", [qw, sw, zw], 1, name=f"{base}_DequantizeLinear", **attrs
                )
                weight_dq[key] = dn.output[0]
            graph.set_input(node, i, weight_dq[key])
        if name in biases and p.bias is not None:
            qb, bscale = biases[name]
            base = node.input[p.bias]
            bq = graph.add_initializer(f"{base}_quantized", qb)
            bs = graph.add_initializer(f"{base}_scale", bscale)
            bz = graph.add_initializer(f"{base}_zero_point", np.zeros(qb.shape, np.int32))
            dn = graph.make_node(
                "DequantizeLinear", [bq, bs, bz], 1, name=f"{base}_DequantizeLinear", axis=0
            )
            graph.set_input(node, p.bias, dn.output[0])
        for i in p.constants:
            value = graph.constant(node.input[i])
            if value is None or value.dtype != np.float32:
                continue
            if _unquantizable(value) is not None:
                continue  # an empty or non-finite operand is read as it is
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
    _drop_unused_constants(graph, trained)
    return graph.commit()


def _trained_constant(
    node: onnx.NodeProto, p: NodePlan, target: str, trained: set[str]
) -> str | None:
    """Why `node` stays float when a weight, constant operand or (onnxruntime: int32) bias it
    would quantize is a tensor the model's training_info reads or binds (its quantized form
    replaces it: the binding or the read would name nothing), else None."""
    bias = () if p.bias is None or target != "onnxruntime" else (p.bias,)
    for i in (*p.weights, *p.constants, *bias):
        if i < len(node.input) and node.input[i] in trained:
            return f"training_info reads or binds {node.input[i]!r}"
    return None


def _quantize_constants(
    graph: Graph,
    name: str,
    p: NodePlan,
    params: dict[str, ActivationQuant],
    target: str,
    opset: int,
    weights: dict[WeightKey, tuple[np.ndarray, np.ndarray]],
    biases: dict[str, tuple[np.ndarray, np.ndarray]],
    weight_max: int = FULL_WEIGHT_MAX,
) -> str | None:
    """Quantize node `name`'s weights into `weights` (shared by (tensor, axis), a node's own
    copy where its bias floor raises a scale of a weight other nodes read too; q in
    [-weight_max, weight_max]) and, for
    onnxruntime, its int32 bias into `biases`; the reason when the node must stay float."""
    node = graph.nodes[name]
    w_scales = None
    for i, axis in p.weights.items():
        base = node.input[i]
        value = graph.constant(base)
        if value is None:
            continue
        what = f"weight {base!r} of {name!r}"
        problem = _unquantizable(value)
        if problem is not None:
            return f"{what} {problem}"
        elem = onnx.TensorProto.FLOAT16 if value.dtype == np.float16 else onnx.TensorProto.FLOAT
        dtype = _scale_dtype(elem, opset, what)
        # TensorRT's bias stays float, but onnxruntime, which runs this model too, turns a
        # float bias behind a DQ'd input and weight into int32 at s_x·s_w itself (its
        # basic-level WeightBiasQuantization), saturating where that overflows: the floor
        # holds for both targets. It bounds the error of this node only: a weight other nodes
        # read too keeps amax / 127, and the node whose floor raises a scale reads its own
        # quantized copy (onnxruntime: its int32 bias then fits, where the shared scale kept
        # the node float)
        floor = _bias_floor(graph, node, p, params)
        if floor is not None and p.bias is not None and not np.all(floor <= np.finfo(dtype).max):
            # (NaN fails too) an inf scale dequantizes its zeros to NaN, and an int32 bias at
            # it reads 0·inf: no int8 form keeps this node's result
            b = node.input[p.bias]
            if not np.all(np.isfinite(floor)):
                return f"bias {b!r} holds NaN or infinity"
            s_x = float(params[node.input[0]].scale)
            return (
                f"bias {b!r} at input scale {s_x:.4g} needs a weight scale of "
                f"{float(floor.max()):.4g} to fit int32, beyond {np.dtype(dtype).name}"
            )
        key: WeightKey = (base, axis, "")
        if all(n.name == name for n in graph.consumer_nodes(base)):
            if key not in weights:
                weights[key] = quantize_weight(value, axis, dtype, floor, weight_max)
        else:
            if key not in weights:
                weights[key] = quantize_weight(value, axis, dtype, weight_max=weight_max)
            if floor is not None:
                own = quantize_weight(value, axis, dtype, floor, weight_max)
                if not np.array_equal(own[1], weights[key][1]):
                    key = (base, axis, name)
                    weights[key] = own
        w_scales = weights[key][1]
    if target != "onnxruntime" or p.bias is None or w_scales is None:
        return None
    x_param = params.get(node.input[0])
    if x_param is None or w_scales.dtype != np.float32:
        return None  # a float16 layer keeps its bias float
    bias = _int32_bias(graph, node, node.input[p.bias], x_param.scale, w_scales)
    if isinstance(bias, str):
        return bias
    if bias is not None:
        biases[name] = bias
    return None


def _bias_floor(
    graph: Graph, node: onnx.NodeProto, p: NodePlan, params: dict[str, ActivationQuant]
) -> np.ndarray | None:
    """The weight scale at which `node`'s 1-D bias b fits the int32 form onnxruntime makes of it
    with a 2x margin, per output channel; None without such a bias or a known s_x.

    float32: |b| / (s_x·2³⁰). float16: onnxruntime's WeightBiasQuantization (basic level, on
    a model of either target) computes s_b = s_x·s_w and round(b / s_b) in float16, then casts
    to int32: a quotient past 65504 is inf, an s_b under float16's least (2⁻²⁴) is 0, and the
    bias it reads back is garbage (common_det converted to float16 with onnxconverter_common,
    target onnxruntime: output error 1.45 of the output's largest value at ORT_ENABLE_BASIC,
    0.38 unfused). So |b| / (s_x·2¹⁵), and at least 2⁻²³ / s_x where b ≠ 0 (s_x as its
    float16 Q/DQ holds it)."""
    x_param = params.get(node.input[0])
    if p.bias is None or x_param is None or len(node.input) <= p.bias:
        return None
    bias = graph.constant(node.input[p.bias])
    if bias is None or bias.ndim != 1 or bias.dtype not in (np.float32, np.float16):
        return None
    b = np.abs(bias.astype(np.float64))
    if bias.dtype == np.float32:
        return b / (float(x_param.scale) * 2.0**30)
    s_x = float(scale_as(x_param.scale, np.float16, f"activation {node.input[0]!r}"))
    with np.errstate(invalid="ignore"):  # (NaN in b stays NaN: the caller names it)
        return np.where(b > 0, np.maximum(b / (s_x * 2.0**15), 2.0**-23 / s_x), b)


def _int32_bias(
    graph: Graph, node: onnx.NodeProto, base: str, x_scale: np.float32, w_scales: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | str | None:
    """(int32 bias, its scale s_x·s_w) for the float32 1-D bias `base` of `node`; None where
    it stays float (not such a bias, or a Gemm with alpha or beta ≠ 1); the reason where the
    node must stay float (the int32 bias would overflow)."""
    bias = graph.constant(base)
    if bias is None or bias.ndim != 1 or bias.size == 0 or bias.dtype != np.float32:
        return None
    if node.op_type == "Gemm":
        alpha, beta = graph.attr(node, "alpha", 1.0), graph.attr(node, "beta", 1.0)
        if alpha != 1.0 or beta != 1.0:
            log.info(
                "bias %r of Gemm %r kept float: alpha=%g, beta=%g (int32 bias needs 1, 1)",
                base,
                node.name,
                alpha,
                beta,
            )
            return None
    bscale = (np.float64(x_scale) * w_scales.astype(np.float64)).astype(np.float32)
    if bscale.size == 1:
        bscale = np.full(bias.shape, bscale.reshape(()), np.float32)
    if bscale.shape != bias.shape or not np.all(bscale > 0):
        return None
    qb = np.round(bias.astype(np.float64) / bscale)
    if not np.all(np.abs(qb) <= _INT32_MAX):  # also false for NaN
        worst = float(np.nanmax(np.abs(qb))) if not np.all(np.isnan(qb)) else float("nan")
        return f"bias {base!r} / (s_x·s_w) reaches {worst:.4g}, beyond int32"
    return qb.astype(np.int32), bscale


def _unquantizable(value: np.ndarray) -> str | None:
    """Why int8 cannot represent a constant (empty, not float, NaN or infinity), or None."""
    if value.size == 0:
        return "is empty"
    if value.dtype not in (np.float32, np.float16):
        return f"is {value.dtype}"
    if not np.all(np.isfinite(value)):
        return "holds NaN or infinity"
    return None


def _scale_dtype(elem_type: int, opset: int, what: str) -> type:
    """The scale dtype a Q/DQ of a tensor of `elem_type` must have at `opset`; QuantizeError
    where no valid Q/DQ exists."""
    if elem_type == onnx.TensorProto.FLOAT:
        return np.float32
    if elem_type == onnx.TensorProto.FLOAT16:
        if opset >= FLOAT16_QDQ_OPSET:
            return np.float16
        raise QuantizeError(
            f"{what} is float16: QuantizeLinear/DequantizeLinear take float16 only from opset "
            f"{FLOAT16_QDQ_OPSET} (the model has opset {opset}); convert it to opset "
            f"{FLOAT16_QDQ_OPSET} first"
        )
    kind = type_name(elem_type, lower=False)
    raise QuantizeError(f"{what} is {kind}: Q/DQ is written only for FLOAT and FLOAT16 tensors")


_DTYPE_ATTRIBUTES = ("to", "dtype", "output_dtype")


def has_float16(model: onnx.ModelProto) -> bool:
    """Whether float16 appears anywhere in the main graph: declared inputs, outputs or
    value_info, initializers (sparse too), Constant tensors, a Cast/CastLike-style dtype
    attribute, or the declared outputs of an If/Loop/Scan body (a body that casts to float16
    hands the main graph float16 tensors, the If's outputs, that nothing there declares; what
    stays inside a body is never quantized)."""
    fp16 = onnx.TensorProto.FLOAT16
    g = model.graph
    bodies = [body for node in g.node for body in subgraphs(node)]
    declared = [*g.input, *g.output, *g.value_info, *(o for b in bodies for o in b.output)]
    if any(vi.type.tensor_type.elem_type == fp16 for vi in declared):
        return True
    stored = [*g.initializer, *(t.values for t in g.sparse_initializer)]
    if any(t.data_type == fp16 for t in stored):
        return True
    return any(
        (a.type == onnx.AttributeProto.INT and a.name in _DTYPE_ATTRIBUTES and a.i == fp16)
        or (a.type == onnx.AttributeProto.TENSOR and a.t.data_type == fp16)
        for node in g.node
        for a in node.attribute
    )


def types_if_float16(model: onnx.ModelProto) -> dict[str, int]:
    """Element types of the model's tensors when float16 appears anywhere in it, else {} (every
    activation is then float32, and shape inference is not worth running per call)."""
    if not has_float16(model):
        return {}
    from graphopt.quant.placement import tensor_types

    return tensor_types(model)


def _drop_unused_constants(graph: Graph, trained: set[str]) -> None:
    """Initializers and Constant nodes that nothing reads any more (the float weights the
    quantized ones replaced); those the model's training_info reads or binds (`trained`: a
    learning rate, a step count) are kept, which the inference graph never read; so are those
    a quantization annotation of a tensor still in the graph names (its SCALE_TENSOR,
    ZERO_POINT_TENSOR: dropping them lost the scale, the annotation naming nothing)."""
    used = {t for n in graph for t in graph.node_inputs(n)} | set(graph.graph_outputs) | trained
    for note in graph.proto.quantization_annotation:
        tensor = note.tensor_name
        if tensor in used or tensor in graph.producer or graph.is_graph_input(tensor):
            used.update(entry.value for entry in note.quant_parameter_tensor_names)
    for name in list(graph.initializers):
        if name not in used and not graph.is_graph_input(name):
            graph.remove_initializer(name)
    for node in list(graph):
        constant = node.op_type == "Constant" and node.domain in ("", "ai.onnx")
        if constant and not any(o in used for o in node.output):
            graph.remove_node(node)
