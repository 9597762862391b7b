"""onnxruntime's NCHWc (blocked channel) layout, applied ahead of time: `ort-nchwc-layout`.

onnxruntime's CPU provider runs 2-D float convolutions and pools fastest on tensors whose
channels are split into blocks of b (b = `MlasNchwcGetBlockSize()`: 8 with AVX2, 16 with
AVX-512): [N, C, H, W] is stored as [N, ⌈C/b⌉, H, W, b] and zero padded to a multiple of b. Its
`NchwcTransformer` (ORT_ENABLE_ALL only) rewrites Conv/FusedConv/pools into the
`com.microsoft.nchwc` kernels, reorders the filters into the blocked layouts those kernels read,
keeps chains of convolutions, pools, Add/Sum/Mul, channel Concat, activations and integer
Resize in blocked form, and reorders back at the boundaries. This module makes the same rewrite
(filters bitwise equal to onnxruntime 1.32's) so that a session at ORT_DISABLE_ALL (or a saved
model) gets that speed; it also keeps x ∘ k by a scalar constant blocked, which onnxruntime's
transformer does not.

b is measured, never guessed: a one-Conv model is optimized by the installed onnxruntime at
ORT_ENABLE_ALL and b read from the nchwc filter it saves. When onnxruntime emits no nchwc op (a
CPU without the kernels, e.g. non-x86) the pass changes nothing and says why. The output is
therefore specific to this machine's vector width, like onnxruntime's own saved ENABLE_ALL
models: it runs only on onnxruntime, on a CPU with the same block size (recorded in the model's
metadata_props as `graphopt.nchwc_block_size`; onnxruntime itself does not check it). With the
option `fallback: true` (the `ort-cpu` pipeline) the model checks it: the NCHWc graph runs behind
If(this CPU's block size = b), the graph as it was before the pass in the other branch
(`graphopt.passes.nchwc_fallback`); a graph holding a Constant whose attribute has another type
than its name says is left as it is then (onnxruntime runs it only outside a branch).

What it does not do: BatchNormalization → depthwise Conv (fold it first: `fold-batchnorm`),
NCHW→NHWC Transpose into ReorderOutput, convolutions whose filter or bias is not a constant,
Add/Mul whose operand shapes are not statically known to be equal, FusedConv with an activation
the installed onnxruntime's kernels lack (Silu, Elu in 1.32: no model with it loads), Resize
other than nearest (asymmetric, floor) or linear (asymmetric, align_corners, half_pixel) by
integer scales, MaxPool/AveragePool whose output may have a height or width of 0 (the nchwc
pools die of SIGFPE on one), IR < 4 models (every initializer must be a graph input there, so
no reordered filter can be added), graphs that hold NCHWc ops already, unless the metadata
says they are for this block size and there is no fallback to make (their filters are reordered
for the block size they were made for).
Nor does it keep non-finite values exactly as the NCHW kernels do (measured, onnxruntime 1.32,
equal to what its own ORT_ENABLE_ALL gives): ±inf in a real channel of a Conv's input puts
NaN (inf·0) in the padded channels of its output, so the next Conv gives NaN where the NCHW
graph gives ±inf; and a NaN in a MaxPool window gives NaN, the other values' maximum or
-FLT_MAX depending on where it sits, differently in the NCHWc and the NCHW kernel. Refusing the
first would cost real detectors convolutions (3 of common_det's 83 nchwc Convs and 12 of
ppocr_det's 62 read such a tensor), the second every MaxPool.
"""

from __future__ import annotations

import functools
import logging
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from graphopt.analysis.shapes import ShapeFacts, shape_facts
from graphopt.ir import Graph
from graphopt.ir.nodes import mistyped_constant
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.passes.constant_folding import initializers_allowed

log = logging.getLogger("graphopt.passes.ort_nchwc")

NCHWC_DOMAIN = "com.microsoft.nchwc"
BLOCK_SIZE_KEY = "graphopt.nchwc_block_size"  # metadata_props entry: the b the model is for
_MS_DOMAIN = "com.microsoft"
_DEFAULT = ("", "ai.onnx")
_FLOAT = onnx.TensorProto.FLOAT
_RULE = "ort-nchwc-layout"

# Default-domain opsets whose semantics onnxruntime's transformer accepts (the op's
# since-version must be below these): Conv-22, MaxPool-22, AveragePool-19, Resize-18 changed.
# onnxruntime's ReorderInput kernel takes channel counts in multiples of this; its transformer
# (nchwc_transformer.cc, `channel_alignment`) refuses other non-grouped convs with at least b
# input channels, and grouped convs with other output counts. We refuse the first only where the
# input must be reordered (an input already blocked is read as it is), the second always.
_CHANNEL_ALIGNMENT = 4
_OPSET_LIMIT = {"Conv": 22, "MaxPool": 22, "AveragePool": 19, "Resize": 18, "Upsample": 99}
_FUSABLE_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh")  # fused into the nchwc Conv like onnxruntime
_SCALAR_OPS = ("Add", "Sub", "Mul", "Div")  # x ∘ k, k a one-element constant, stays blocked
# Resize-11+ linear sampling modes onnxruntime's nchwc Upsample implements (measured).
_LINEAR_TRANSFORMS = ("asymmetric", "align_corners", "half_pixel")
_UNARY = {("", "Relu"), ("", "Sigmoid"), ("", "Tanh"), (_MS_DOMAIN, "QuickGelu")}
_FINITE_PAD = 1e38  # a bound on padded channels below float32's largest value, with a margin
# The block sizes MLAS uses (MlasNchwcGetBlockSize: 8 with SSE/AVX2, 16 with AVX-512F or
# ARM64 NEON). A `block_size` option of another value targets no CPU: without the guard its
# model was wrong on every one, the guard's probe (4 channels padded to b) cannot tell 4 from 1
# or 2, and a b past 16 floats (512 bits, the widest SIMD register) only pads the filters.
_BLOCK_SIZES = (8, 16)
# Resize scales the nchwc Upsample takes as int64 attributes: inf, NaN and 1e20 have no int64
# (int() raised); an output dim this many times its input has no buffer anyway
_MAX_SCALE = 2**31


# ---------------------------------------------------------------------------- block size
@functools.cache
def measured_block_size() -> tuple[int, str]:
    """(b, "") with onnxruntime's NCHWc block size on this CPU, or (0, why) when it has none.

    Optimizes Conv(x[1,3,4,4], W[1,3,1,1]) at ORT_ENABLE_ALL and reads b from the first dimension
    of the nchwc filter onnxruntime saves (one output channel is padded up to one block).
    """
    from onnx import helper, numpy_helper

    from graphopt.backends.onnxruntime import PROBE_IR_VERSION, session
    from graphopt.errors import BackendError

    weight = numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"])],
        "nchwc_probe",
        [helper.make_tensor_value_info("x", _FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", _FLOAT, [1, 1, 4, 4])],
        [weight],
    )
    probe = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=PROBE_IR_VERSION
    )
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "probe.onnx"
        try:
            session(probe, threads=1, level="all", optimized_path=str(saved))
        except BackendError as e:
            return 0, f"onnxruntime could not optimize the probe model: {e}"
        optimized = onnx.load(str(saved))
    inits = {t.name: t for t in optimized.graph.initializer}
    for node in optimized.graph.node:
        if node.domain == NCHWC_DOMAIN and node.op_type == "Conv" and node.input[1] in inits:
            return int(inits[node.input[1]].dims[0]), ""
    return 0, "onnxruntime emits no com.microsoft.nchwc ops on this CPU (no NCHWc kernels)"


# ---------------------------------------------------------------------------- filter layouts
def reorder_filter_oihw_bibo(weight: np.ndarray, block: int) -> np.ndarray:
    """MlasReorderFilterOIHWBiBo: W[O, I, H, W] → [Õ/b, I/b, H, W, b_i, b_o] (Õ = O padded to b).

    Stored with dims [Õ, I, H, W]; needs I % b = 0 (pad I with zero filters first). Padded
    output channels are zero.
    """
    blocked = _oihw_bibo(weight, block)
    return np.ascontiguousarray(blocked).reshape(_align(weight.shape[0], block), *weight.shape[1:])


def reorder_filter_oihw_bo(weight: np.ndarray, block: int) -> np.ndarray:
    """MlasReorderFilterOIHWBo: W[O, I, H, W] → [Õ/b, I, H, W, b_o], stored with dims [Õ, I, H, W].

    For a first layer reading plain NCHW (I < b) and for depthwise filters (I = 1).
    """
    blocked = _oihw_bo(weight, block)
    return np.ascontiguousarray(blocked).reshape(_align(weight.shape[0], block), *weight.shape[1:])


# The pass writes these views' bytes straight into the model (`tobytes` copies once, in C
# order), padding only where the channels need it: a 96×96×3×3 filter reordered and added as
# an initializer took 452 µs through reorder_filter_* and numpy_helper.from_array, 47 µs so.
def _oihw_bibo(weight: np.ndarray, block: int) -> np.ndarray:
    """R(W) as a view [Õ/b, Ĩ/b, H, W, b_i, b_o] of W zero padded to [Õ, Ĩ] (Ĩ = I padded to b)."""
    o, i, kh, kw = weight.shape
    padded = _zero_padded(weight, _align(o, block), _align(i, block))
    blocks_in = padded.shape[1] // block
    return padded.reshape(-1, block, blocks_in, block, kh, kw).transpose(0, 2, 4, 5, 3, 1)


def _oihw_bo(weight: np.ndarray, block: int) -> np.ndarray:
    """R_o(W) as a view [Õ/b, I, H, W, b_o] of W zero padded to Õ output channels."""
    o, i, kh, kw = weight.shape
    padded = _zero_padded(weight, _align(o, block), i)
    return padded.reshape(-1, block, i, kh, kw).transpose(0, 2, 3, 4, 1)


def _zero_padded(weight: np.ndarray, out_ch: int, in_ch: int) -> np.ndarray:
    """`weight` [O, I, H, W] with zero filters up to [out_ch, in_ch]; itself when no padding."""
    o, i = weight.shape[:2]
    if (o, i) == (out_ch, in_ch):
        return weight
    padded = np.zeros((out_ch, in_ch, *weight.shape[2:]), np.float32)
    padded[:o, :i] = weight
    return padded


def _align(channels: int, block: int) -> int:
    return (channels + block - 1) // block * block


# ---------------------------------------------------------------------------- shapes
_STANDARD_TWINS = {(_MS_DOMAIN, "FusedConv"): "Conv", (_MS_DOMAIN, "QuickGelu"): "Sigmoid"}
_SMALL_CONSTANT = 4096  # elements of an initializer the twin keeps (Reshape targets, scales)


def _shape_facts(graph: Graph, ctx: PassContext) -> ShapeFacts:
    """Shape facts, inferred over a twin where FusedConv is Conv and QuickGelu is Sigmoid.

    ONNX shape inference knows no com.microsoft op and stops at the first FusedConv; these two
    have exactly the shapes of their standard twins. Without such ops: `shape_facts` as is.
    """
    if not any((n.domain, n.op_type) in _STANDARD_TWINS for n in graph):
        return shape_facts(graph, ctx)
    twin = onnx.ModelProto(ir_version=max(graph.model.ir_version, 4))
    twin.opset_import.extend(graph.model.opset_import)
    g = twin.graph
    g.input.extend(graph.proto.input)
    g.output.extend(graph.proto.output)
    g.value_info.extend(graph.proto.value_info)
    declared = set(graph.graph_inputs)
    for name, init in graph.initializers.items():
        external = init.data_location == onnx.TensorProto.EXTERNAL
        size = math.prod(init.dims[:])  # int(np.prod(init.dims)) took 5 µs, this 0.3 µs
        if not external and size <= _SMALL_CONSTANT:
            g.initializer.append(init)
        elif name not in declared:  # only its dtype and shape matter
            g.input.append(onnx.helper.make_tensor_value_info(name, init.data_type, init.dims))
    nodes = graph.toposort()
    for k, node in enumerate(nodes):
        op = _STANDARD_TWINS.get((node.domain, node.op_type))
        if op is not None:
            inputs = node.input[:1] if op == "Sigmoid" else node.input[:3]
            kept = [a for a in node.attribute if a.name not in _FUSED_ATTRS] if op == "Conv" else []
            nodes[k] = _node(op, inputs, node.output, node.name, "", kept)
    g.node.extend(nodes)
    return shape_facts(Graph(twin))


_FUSED_ATTRS = ("activation", "activation_params")


# ---------------------------------------------------------------------------- the pass
@dataclass
class _Blocked:
    """An original NCHW tensor's blocked twin: its name, logical channels and producer."""

    tensor: str
    channels: int
    producer: str  # node writing `tensor` (an nchwc Conv can take a Sum or an activation)
    uses: int  # readers of the original tensor when it was converted (graph output counts)
    # a bound on |x| over the padded channels (inf: unknown, maybe inf or NaN). A Conv reading
    # them multiplies them by zero filters, which only a finite value survives (inf·0 = NaN)
    pad: float = 0.0

    def __post_init__(self) -> None:
        # float32 holds no value of this size: the padded values may be inf already, which a
        # finite bound arithmetic would lose (1e40 · 0 = 0 and 1e40 · 1e-5 = 1e35, where
        # inf · 0 = NaN and inf · 1e-5 = inf); a NaN bound (inf · 0) is unknown too
        if not self.pad < _FINITE_PAD:
            self.pad = math.inf


@register_pass
@dataclass
class OrtNchwcLayout(Pass):
    """Rewrite float 2-D convolutions and pools into onnxruntime's NCHWc kernels.

    With b the measured block size and ⟦x⟧ = x in blocked layout [N, ⌈C/b⌉, H, W, b]:
        Conv(x, W, B), I ≥ b     ⇒  ⟦y⟧ = nchwc.Conv(⟦x⟧, R(W̃), B̃)      (W̃: I padded to b⌈I/b⌉;
                                                                  I % 4 = 0 unless x is blocked)
        Conv(x, W, B), I < b     ⇒  ⟦y⟧ = nchwc.Conv(x, R_o(W), B̃)       (reads NCHW directly)
        depthwise Conv, group=O  ⇒  ⟦y⟧ = nchwc.Conv(⟦x⟧, R_o(W), B̃, group=Õ)   (O a multiple of 4)
        grouped Conv             ⇒  as I ≥ b, when I and O/group are multiples of b
        MaxPool/AveragePool(x)   ⇒  ⟦y⟧ = nchwc.Pool(⟦x⟧)                 (C % b = 0)
        Add(⟦a⟧, ⟦c⟧)             ⇒  nchwc.Conv(…, Sum=⟦c⟧) when a is a single-use Conv
                                     without activation, else Add on blocked tensors
        act(⟦y⟧)                 ⇒  nchwc.Conv(…, activation=act) for a single-use Conv
        Concat₁(⟦a⟧, …), Mul, Sum, QuickGelu, GlobalPool, Resize ×k (integer k) stay blocked,
        and so do ⟦x⟧ ∘ k for ∘ ∈ {+, −, ×, ÷} and a finite one-element constant k
        ⟦x⟧ = ReorderInput(x),   x = ReorderOutput(⟦x⟧, channels=C)  at the boundaries.
    R = MlasReorderFilterOIHWBiBo, R_o = MlasReorderFilterOIHWBo (depthwise too), B̃ = B zero
    padded to Õ = b⌈O/b⌉. Padded channels of ⟦y⟧ hold zeros (or act(0)); ReorderOutput drops
    them and every blocked consumer ignores them.
    With `fallback`: y = If(Shape(ReorderInput(0[1,4,1,1]))[1] = b, NCHWc graph, original graph).
    The rewrite relies on ONNX's rule that one dim_param has one value in a run: Add/Sum/Mul
    operands count as the same shape when their dims are equal numbers or equal dim_params, and
    onnxruntime's allocation planner reuses the new nodes' buffers by symbolic shape (fed
    [1, 16, 6, 6] and [1, 16, 1, 6] for [n, 16, h, w] both, the NCHW graph broadcasts where the
    rewritten one stops with "Shape mismatch attempting to re-use buffer", as the original does
    at ORT_ENABLE_ALL, and does so whether or not the Add stays blocked; no wrong values seen).
    """

    name = "ort-nchwc-layout"
    in_bodies = False  # its fallback guard is an If around the whole graph
    opt_level = 2
    # 0: measure b with the installed onnxruntime. Another value targets another machine's b
    # (8: AVX2, 16: AVX-512); the output then computes the right values only on such a CPU.
    # Other values are a ValueError (PipelineError): one like 2**70 padded the filters to b
    # channels at run time ("Maximum allowed dimension exceeded", or out of memory).
    block_size: int = 0
    # Keep the graph as it was too, behind If(this CPU's block size = b): correct on every CPU
    # with NCHWc kernels (e.g. x86-64), blocked where b matches (graphopt.passes.nchwc_fallback;
    # the model carries both filters; onnxruntime without NCHWc kernels cannot load it).
    fallback: bool = False

    def __post_init__(self) -> None:
        b = self.block_size
        # (a YAML value: PipelineError naming file:line; 16.0 or False from Python code equal
        # a block size but are none: 16.0 failed at run time, 'float' as an integer)
        integer = isinstance(b, int | np.integer) and not isinstance(b, bool)
        if not integer or b not in (0, *_BLOCK_SIZES):
            raise ValueError(
                f"block_size must be 0 (measure it), 8 (SSE/AVX2) or 16 (AVX-512), the block "
                f"sizes onnxruntime's NCHWc kernels have, got {b!r}"
            )
        self.block_size = int(b)
        if not isinstance(self.fallback, bool | np.bool_):  # 'no' is true: it guarded
            raise ValueError(f"fallback must be True or False, got {self.fallback!r}")

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        from graphopt.passes import nchwc_fallback

        if not initializers_allowed(graph, ctx, _RULE):  # the reordered filters are initializers
            return PassResult(False)
        version = graph.opset.get(NCHWC_DOMAIN)
        if version not in (None, 1):  # its ops are version 1: onnxruntime refused the result
            why = f"the model imports {NCHWC_DOMAIN} at version {version}; its ops are version 1"
            ctx.note(_RULE, "(graph)", "refused", why)
            return PassResult(False, {"block_size": 0})
        block, why = (self.block_size, "") if self.block_size > 0 else measured_block_size()
        if block > 0:
            why = _held_layout(graph, block, self.fallback)
        facts = None
        if block > 0 and self.fallback and not why:
            why = nchwc_fallback.unguardable(graph) or _unbranchable_constant(graph)
            if not why:
                facts = _shape_facts(graph, ctx)
                why = nchwc_fallback.outputs_counted_apart(graph, facts.apart_roots)
        if why:
            ctx.note(_RULE, "(graph)", "refused", why)
            log.info("ort-nchwc-layout: %s", why)
            return PassResult(False, {"block_size": max(block, 0)})
        portable = nchwc_fallback.snapshot(graph) if self.fallback else None
        rewrite = _Rewrite(graph, ctx, block, facts or _shape_facts(graph, ctx))
        for node in graph.toposort():
            if node.name in graph.nodes:
                rewrite.visit(node)
        rewrite.finish()
        stats = dict(rewrite.stats)
        stats["block_size"] = block
        if portable is not None and rewrite.changed:
            nchwc_fallback.guard(graph, portable, block)
            stats["guarded"] = 1
        return PassResult(rewrite.changed, stats)


def _unbranchable_constant(graph: Graph) -> str:
    """Why the graph's nodes cannot move into the fallback's If branches, or "": a
    `mistyped_constant` (`value_int` given as a FLOAT), which onnxruntime runs in the main graph
    (reading the attribute by its type) but refuses inside a body ("Mismatched attribute
    type")."""
    for node in graph.nodes.values():
        if (
            node.op_type == "Constant"
            and node.domain in _DEFAULT
            and mistyped_constant(node.attribute)
        ):
            return (
                f"Constant {node.name!r} has an attribute of another type than its name says, "
                "which onnxruntime refuses inside the fallback's If branches"
            )
    return ""


def _held_layout(graph: Graph, block: int, fallback: bool) -> str:
    """Why NCHWc ops the graph holds already forbid the rewrite for block size `block`, or "".

    Their filters are reordered for the block size in the model's metadata (unknown without
    it, as in onnxruntime's own saved models): ops for another one next to ours compute wrong
    values on every CPU, and a fallback holding any is no NCHW graph (wrong on another CPU).
    """
    held = next((n for n in graph.nodes.values() if n.domain == NCHWC_DOMAIN), None)
    if held is None:
        return ""
    if fallback:
        return f"the graph holds NCHWc ops already ({held.name!r}): no NCHW fallback"
    made_for = next((p.value for p in graph.model.metadata_props if p.key == BLOCK_SIZE_KEY), "")
    if made_for != str(block):
        return (
            f"the graph holds NCHWc ops ({held.name!r}) for block size {made_for or 'unknown'}, "
            f"not {block}"
        )
    return ""


@dataclass
class _Rewrite:
    graph: Graph
    ctx: PassContext
    block: int
    facts: ShapeFacts
    blocked: dict[str, _Blocked] = field(default_factory=dict)
    reordered_inputs: dict[str, str] = field(default_factory=dict)
    filters: dict[tuple[str, bool], str] = field(default_factory=dict)
    biases: dict[str, str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    changed: bool = False
    released: set[str] = field(default_factory=set)  # what removed nodes read
    rebuilt: dict[bytes, onnx.AttributeProto | None] = field(default_factory=dict)  # _attributes

    def _remove(self, node: onnx.NodeProto) -> None:
        self.released.update(t for t in node.input if t)
        self.graph.remove_node(node)

    # ------------------------------------------------------------------ dispatch
    def visit(self, node: onnx.NodeProto) -> None:
        op, domain = node.op_type, node.domain or ""
        if (op == "Conv" and domain in _DEFAULT) or (op == "FusedConv" and domain == _MS_DOMAIN):
            self._refusable(node, self._conv(node))
        elif op in ("MaxPool", "AveragePool") and domain in _DEFAULT:
            self._refusable(node, self._pool(node, needs_blocked_input=False))
        elif not any(t in self.blocked for t in node.input):
            return
        elif (
            op in _SCALAR_OPS
            and domain in _DEFAULT
            and (scalar := self._scalar_operand(node)) is not None
        ):
            self._refusable(node, self._with_scalar(node, scalar))
        elif op in ("Add", "Sum", "Mul") and domain in _DEFAULT:
            self._refusable(node, self._binary(node))
        elif op == "Concat" and domain in _DEFAULT:
            self._refusable(node, self._concat(node))
        elif (domain or "", op) in _UNARY or (op in _UNARY_DEFAULT and domain in _DEFAULT):
            self._refusable(node, self._activation(node))
        elif op in ("GlobalAveragePool", "GlobalMaxPool") and domain in _DEFAULT:
            self._refusable(node, self._pool(node, needs_blocked_input=True))
        elif op in ("Resize", "Upsample") and domain in _DEFAULT:
            self._refusable(node, self._resize(node))

    def _refusable(self, node: onnx.NodeProto, reason: str) -> None:
        if reason:
            self.ctx.note(_RULE, node.name, "refused", reason)
        else:
            self.ctx.note(_RULE, node.name, "applied")
            self.changed = True

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    # ------------------------------------------------------------------ Conv / FusedConv
    def _conv(self, node: onnx.NodeProto) -> str:
        g, block = self.graph, self.block
        if node.domain in _DEFAULT and g.opset_version("") >= _OPSET_LIMIT["Conv"]:
            return f"Conv at opset {g.opset_version('')} is newer than onnxruntime's transformer"
        if len(node.input) > 3 and node.input[3]:
            return "FusedConv with a Z (sum) input"
        if empty := _empty_list_attribute(node):
            return f"attribute {empty} is an empty list"
        if why := _refused_activation(node):
            return why
        weight = g.constant(node.input[1]) if len(node.input) > 1 else None
        if weight is None or weight.dtype != np.float32 or weight.ndim != 4:
            return "filter is not a constant float32 4-D tensor"
        if weight.size == 0:  # no nchwc kernel or ReorderOutput takes 0 channels
            return f"empty filter (shape {list(weight.shape)})"
        out_ch, in_ch = int(weight.shape[0]), int(weight.shape[1])
        groups = int(g.attr(node, "group", 1))
        read_nchw = depthwise = False
        if groups > 1:
            if out_ch % _CHANNEL_ALIGNMENT:
                return f"grouped conv with {out_ch} output channels, not a multiple of 4"
            depthwise = in_ch == 1 and out_ch == groups
            per_group = out_ch // groups
            if not depthwise and (in_ch % block or out_ch % groups or per_group % block):
                return f"grouped conv whose channels per group are not multiples of {block}"
        elif in_ch < block:
            read_nchw = True  # the kernel reads the plain NCHW input
        elif in_ch % _CHANNEL_ALIGNMENT and node.input[0] not in self.blocked:
            # (a blocked input needs no ReorderInput; its padded channels meet the filter's
            # zero padded input channels, which a finite value survives: `_Blocked.pad`)
            return f"{in_ch} input channels to reorder, not a multiple of 4"
        arg = None if read_nchw else self.blocked.get(node.input[0])
        in_pad = arg.pad if arg is not None and arg.channels % block else 0.0
        if not depthwise and not in_pad < _FINITE_PAD:
            return "the blocked input's padded channels may not be finite (inf·0 = NaN)"
        bo_layout = read_nchw or depthwise
        bias_name = node.input[2] if len(node.input) > 2 else ""
        bias = g.constant(bias_name) if bias_name else None
        if bias_name and (bias is None or bias.dtype != np.float32 or bias.shape != (out_ch,)):
            return f"bias {bias_name} is not a constant float32 vector of {out_ch}"
        if self.facts.dtype(node.input[0]) not in (None, _FLOAT):
            return "input is not float32"

        filt = self._filter(node.input[1], weight, bo_layout)
        inputs = [node.input[0], filt]
        if bias is not None:
            inputs.append(self._bias(bias_name, bias))
        if not read_nchw:
            inputs[0] = self._blocked_input(node.input[0])
        overrides = {"group": _align(out_ch, block)} if depthwise else {}  # padded: zero filters
        attributes = _attributes(node, self.rebuilt, **overrides)
        # zero filters and bias: act(0) in padded output channels, or (depthwise) act(x·0)
        act = _text(g.attr(node, "activation", b""))
        pad = _activation_bound(act, g.attr(node, "activation_params", []), 0.0, in_pad)
        self._replace(node, "Conv", inputs, attributes, out_ch, pad)
        self._count("conv")
        return ""

    def _filter(self, name: str, weight: np.ndarray, bo_layout: bool) -> str:
        key = (name, bo_layout)
        if key not in self.filters:
            o, i, kh, kw = weight.shape
            if bo_layout:
                blocked, dims = _oihw_bo(weight, self.block), (_align(o, self.block), i, kh, kw)
            else:  # input channels zero padded like the blocked input they read
                blocked = _oihw_bibo(weight, self.block)
                dims = (_align(o, self.block), _align(i, self.block), kh, kw)
            self.filters[key] = _add_float_initializer(self.graph, f"{name}_nchwc", dims, blocked)
        return self.filters[key]

    def _bias(self, name: str, bias: np.ndarray) -> str:
        if bias.shape[0] % self.block == 0:
            return name
        if name not in self.biases:
            padded = np.zeros(_align(bias.shape[0], self.block), np.float32)
            padded[: bias.shape[0]] = bias
            self.biases[name] = _add_float_initializer(
                self.graph, f"{name}_nchwc", padded.shape, padded
            )
        return self.biases[name]

    # ------------------------------------------------------------------ pools
    def _pool(self, node: onnx.NodeProto, needs_blocked_input: bool) -> str:
        g = self.graph
        limit = _OPSET_LIMIT.get(node.op_type)
        if limit and g.opset_version("") >= limit:
            return f"{node.op_type} at opset {g.opset_version('')} is newer than the transformer"
        if len(node.output) > 1 and node.output[1]:
            return "MaxPool with an Indices output"
        if empty := _empty_list_attribute(node):
            return f"attribute {empty} is an empty list"
        if any(d != 1 for d in g.attr(node, "dilations", [1, 1])):
            return "dilated pooling"
        if g.attr(node, "ceil_mode", 0) and g.attr(node, "count_include_pad", 0):
            # a last window past the padded input: the nchwc kernel divides by a count of its
            # own, not the NCHW kernel's (measured: values differ, onnxruntime 1.32)
            return "AveragePool with ceil_mode and count_include_pad"
        x = node.input[0]
        if not needs_blocked_input and (why := self._may_be_empty(node, x)):
            return why
        arg = self.blocked.get(x)
        if arg is not None:  # blocked tensors are float32 and 4-D by construction
            channels: object = arg.channels
        elif needs_blocked_input:
            return "input is not in blocked layout"
        else:
            shape = self.facts.shape(x)
            if self.facts.dtype(x) != _FLOAT or shape is None or len(shape) != 4:
                return "input is not a known float32 4-D tensor"
            channels = shape[1]
        if not isinstance(channels, int) or channels % self.block:
            return f"channels {channels} are not a known multiple of {self.block}"
        attributes = _attributes(node, self.rebuilt)
        pad = arg.pad if arg is not None else 0.0  # a window of bounded values is bounded
        self._replace(node, node.op_type, [self._blocked_input(x)], attributes, channels, pad)
        self._count("pool")
        return ""

    def _may_be_empty(self, node: onnx.NodeProto, x: str) -> str:
        """Why MaxPool/AveragePool `node` may give an output of height or width 0 ("" where it
        cannot): onnxruntime's nchwc pools die of SIGFPE on one (1.32, as at its own
        ORT_ENABLE_ALL), where the NCHW kernels give an empty tensor (a 3×3 pool of a 2×2
        input, no padding). onnxruntime counts an output dim of (d + pads − k) / s + 1,
        rounded toward 0 (ceil_mode: up): 0 where d + pads − k ≤ −s. An input dim d of 0 fails
        both kernels, so d ≥ 1 where it is not known; SAME padding gives ⌈d / s⌉ ≥ 1."""
        g = self.graph
        auto_pad = _text(g.attr(node, "auto_pad", b"NOTSET"))
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            return ""
        kernel = [int(k) for k in g.attr(node, "kernel_shape", [])]
        n = len(kernel)
        strides = [int(v) for v in g.attr(node, "strides", [])] or [1] * n
        pads = [int(v) for v in g.attr(node, "pads", [])] if auto_pad == "NOTSET" else []
        pads = pads or [0] * (2 * n)
        shape = self.facts.shape(x)
        dims = list(shape[2:]) if shape is not None and len(shape) == 2 + n else [None] * n
        if len(strides) != n or len(pads) != 2 * n:  # (the node is invalid: nothing to keep)
            return "its strides or pads do not fit its kernel_shape"
        for i, (k, d) in enumerate(zip(kernel, dims, strict=True)):
            least = d if isinstance(d, int) and d > 0 else 1
            if least + pads[i] + pads[i + n] - k <= -strides[i]:
                return (
                    f"its output may be empty (kernel {k}, stride {strides[i]} over a dim of "
                    f"{d}, pads {pads}): onnxruntime's nchwc pools die of SIGFPE on one"
                )
        return ""

    # ------------------------------------------------------------------ elementwise
    def _scalar_operand(self, node: onnx.NodeProto) -> np.ndarray | None:
        """The one-element constant of a binary op whose other operand is blocked."""
        if len(node.input) != 2 or (node.input[0] in self.blocked) == (
            node.input[1] in self.blocked
        ):
            return None
        k = 1 if node.input[0] in self.blocked else 0
        value = self.graph.constant(node.input[k])
        return value if value is not None and value.size == 1 else None

    def _with_scalar(self, node: onnx.NodeProto, value: np.ndarray) -> str:
        """x ∘ k with a one-element constant k (`value`) is the same on any layout. Beyond
        onnxruntime's transformer; the padded channels become 0 ∘ k, which must be finite (no
        k / x)."""
        blocked_first = node.input[0] in self.blocked
        if value.dtype != np.float32 or value.ndim > 4 or not np.isfinite(value).all():
            return "the constant operand is not a finite float32 scalar of rank ≤ 4"
        if node.op_type == "Div" and (not blocked_first or value.item() == 0):
            return "division by a blocked tensor or by zero"
        arg = self.blocked[node.input[0] if blocked_first else node.input[1]]
        inputs = [arg.tensor, node.input[1]] if blocked_first else [node.input[0], arg.tensor]
        k = abs(float(value.reshape(-1)[0]))
        op = node.op_type
        pad = arg.pad + k if op in ("Add", "Sub") else arg.pad * k if op == "Mul" else arg.pad / k
        self._keep_blocked(node, inputs, arg.channels, pad)
        self._count("elementwise")
        return ""

    def _binary(self, node: onnx.NodeProto) -> str:
        args = [self.blocked.get(t) for t in node.input]
        if not node.input or any(a is None for a in args):
            return "not every operand is in blocked layout"
        blocked = [a for a in args if a is not None]
        if len({a.channels for a in blocked}) != 1:
            return "operands have different channel counts"
        shapes = [self.facts.shape(t) for t in node.input]
        first = shapes[0]
        if any(s is None or None in s for s in shapes):
            return "operand shapes are not statically known (broadcasting cannot be ruled out)"
        if any(s != first for s in shapes):
            return f"operands broadcast (shapes {', '.join(str(list(s or ())) for s in shapes)})"
        if node.op_type in ("Add", "Sum") and len(blocked) == 2 and node.input[0] != node.input[1]:
            for k in (0, 1):
                if self._fuse_sum(node, blocked[k], blocked[1 - k]):
                    self._count("sum_fused")
                    return ""
        bounds = [a.pad for a in blocked]
        pad = sum(bounds) if node.op_type != "Mul" or math.inf in bounds else math.prod(bounds)
        self._keep_blocked(node, [a.tensor for a in blocked], blocked[0].channels, pad)
        self._count("elementwise")
        return ""

    def _fuse_sum(self, node: onnx.NodeProto, conv: _Blocked, other: _Blocked) -> bool:
        """Add(⟦conv⟧, ⟦other⟧) ⇒ nchwc.Conv(…, Sum=⟦other⟧) for a single-use Conv without
        activation or Sum (the kernel accumulates into the Sum buffer)."""
        producer = self.graph.nodes.get(conv.producer)
        if producer is None or not _is_nchwc_conv(producer) or conv.uses != 1:
            return False
        if self.graph.attr(producer, "activation") is not None or len(producer.input) > 3:
            return False
        inputs = list(producer.input) + [""] * (3 - len(producer.input)) + [other.tensor]
        outputs = self.graph.outputs_of(producer.name)
        fused = _node("Conv", inputs, outputs, producer.name, NCHWC_DOMAIN, producer.attribute)
        self._remove(producer)
        self.graph.add_node(fused)
        # act(⟦conv⟧ + ⟦other⟧), no activation yet: the Conv's own padded channels are 0 but
        # for a depthwise Conv of non-finite ones (x·0 = NaN)
        self._alias(node, conv, conv.pad + other.pad)
        return True

    def _concat(self, node: onnx.NodeProto) -> str:
        if self.graph.attr(node, "axis") != 1:
            return "Concat is not along the channel axis 1"
        args = [self.blocked.get(t) for t in node.input]
        blocked = [a for a in args if a is not None]
        if len(blocked) != len(args):
            return "not every input is in blocked layout"
        if any(a.channels % self.block for a in blocked):
            return f"an input's channels are not a multiple of {self.block}"
        channels = sum(a.channels for a in blocked)  # each a multiple of b: no padding
        self._keep_blocked(node, [a.tensor for a in blocked], channels, 0.0)
        self._count("concat")
        return ""

    def _activation(self, node: onnx.NodeProto) -> str:
        arg = self.blocked.get(node.input[0])
        if arg is None or len(node.input) != 1:
            return "input is not in blocked layout"
        producer = self.graph.nodes.get(arg.producer)
        if (
            node.op_type in _FUSABLE_ACTIVATIONS
            and (node.domain or "") in _DEFAULT
            and producer is not None
            and _is_nchwc_conv(producer)
            and arg.uses == 1
            and self.graph.attr(producer, "activation") is None
        ):
            producer.attribute.append(_string_attribute("activation", node.op_type))
            self._alias(node, arg, _activation_bound(node.op_type, [], arg.pad))
            self._count("activation_fused")
            return ""
        pad = _activation_bound(node.op_type, [], arg.pad)
        self._keep_blocked(node, [arg.tensor], arg.channels, pad)
        self._count("elementwise")
        return ""

    def _resize(self, node: onnx.NodeProto) -> str:
        g = self.graph
        arg = self.blocked.get(node.input[0])
        if arg is None:
            return "input is not in blocked layout"
        opset = g.opset_version("")
        if node.op_type == "Resize" and opset >= _OPSET_LIMIT["Resize"]:
            return f"Resize at opset {opset} is newer than onnxruntime's transformer"
        mode = _text(g.attr(node, "mode", b"nearest"))
        transform = "asymmetric"  # Upsample and Resize-10 sample like this
        if node.op_type == "Resize" and opset >= 11:
            if len(node.input) != 3:
                return "Resize by sizes (needs constant scales)"
            transform = _text(g.attr(node, "coordinate_transformation_mode", b"half_pixel"))
            if mode == "nearest" and transform != "asymmetric":
                return "nearest Resize whose coordinate_transformation_mode is not asymmetric"
            if mode == "nearest" and _text(g.attr(node, "nearest_mode", b"")) != "floor":
                return "nearest Resize whose nearest_mode is not floor"
            if mode == "linear" and transform not in _LINEAR_TRANSFORMS:
                return f"linear Resize with coordinate_transformation_mode {transform}"
            scales_name = node.input[2]
        else:
            if len(node.input) < 2:
                return "scales given as an attribute (Upsample-7)"
            scales_name = node.input[1]
        if mode not in ("nearest", "linear") or (mode == "linear" and node.op_type != "Resize"):
            return f"{mode} interpolation of {node.op_type}-{opset}"
        if mode == "linear" and opset < 11:
            return "linear Resize-10"
        scales = g.constant(scales_name)
        if scales is None or scales.dtype != np.float32 or scales.shape != (4,):
            return "scales are not a constant float32 vector of 4"
        if not (np.isfinite(scales).all() and np.abs(scales).max() < _MAX_SCALE):
            return f"scales {scales.tolist()} are not finite numbers below {_MAX_SCALE}"
        ints = [int(s) for s in scales]
        if any(k <= 0 or float(k) != float(s) for k, s in zip(ints, scales, strict=True)):
            return f"scales {scales.tolist()} are not positive integers"
        if ints[:2] != [1, 1]:
            return "scales the batch or channel dimension"
        attrs = {"scales": ints, "mode": mode, "coordinate_transformation_mode": transform}
        attributes = [onnx.helper.make_attribute(k, v) for k, v in sorted(attrs.items())]
        # interpolation weights are in [0, 1] and sum to 1: bounded values stay bounded
        self._replace(node, "Upsample", [arg.tensor], attributes, arg.channels, arg.pad)
        self._count("upsample")
        return ""

    # ------------------------------------------------------------------ bookkeeping
    def _blocked_input(self, tensor: str) -> str:
        """The blocked twin of `tensor`: its converted producer's, or a shared ReorderInput."""
        arg = self.blocked.get(tensor)
        if arg is not None:
            return arg.tensor
        if tensor not in self.reordered_inputs:
            blocked = self.graph.unique_name(f"{tensor}_nchwc")
            node = _node(
                "ReorderInput", [tensor], [blocked], f"ReorderInput_{tensor}", NCHWC_DOMAIN
            )
            self.graph.add_node(node)
            self.reordered_inputs[tensor] = blocked
            self._count("reorder_input")
        return self.reordered_inputs[tensor]

    def _replace(
        self,
        node: onnx.NodeProto,
        op: str,
        inputs: list[str],
        attributes: list[onnx.AttributeProto],
        channels: int,
        pad: float,
    ) -> None:
        """Remove `node`; an nchwc `op` writes the blocked twin of its first output (`pad`:
        the bound on its padded channels)."""
        out = node.output[0]
        self._remove(node)
        blocked = self.graph.unique_name(f"{out}_nchwc")
        new = _node(op, inputs, [blocked], f"{out}_nchwc", NCHWC_DOMAIN, attributes)
        self.graph.add_node(new)
        self.blocked[out] = _Blocked(blocked, channels, new.name, self.graph.use_count(out), pad)

    def _keep_blocked(
        self, node: onnx.NodeProto, inputs: list[str], channels: int, pad: float
    ) -> None:
        """Re-create `node` reading blocked `inputs` and writing the blocked twin of its output."""
        out = node.output[0]
        blocked = self.graph.unique_name(f"{out}_nchwc")
        name = self.graph.unique_name(f"{node.name}_nchwc")
        new = _node(node.op_type, inputs, [blocked], name, node.domain, node.attribute)
        self._remove(node)
        self.graph.add_node(new)
        self.blocked[out] = _Blocked(blocked, channels, new.name, self.graph.use_count(out), pad)

    def _alias(self, node: onnx.NodeProto, source: _Blocked, pad: float) -> None:
        """`node` was folded into `source`'s producer: its output's twin is that tensor (its
        padded channels now bounded by `pad`)."""
        out = node.output[0]
        self._remove(node)
        uses = self.graph.use_count(out)
        self.blocked[out] = _Blocked(source.tensor, source.channels, source.producer, uses, pad)

    def finish(self) -> None:
        """ReorderOutput for every converted tensor something still reads in NCHW."""
        g = self.graph
        for original, arg in self.blocked.items():
            if g.use_count(original) and g.producer_node(original) is None:
                channels = onnx.AttributeProto(name="channels", i=arg.channels, type=_INT)
                name = f"ReorderOutput_{original}"
                g.add_node(
                    _node("ReorderOutput", [arg.tensor], [original], name, NCHWC_DOMAIN, [channels])
                )
                self._count("reorder_output")
        if self.changed and NCHWC_DOMAIN not in g.opset:
            g.model.opset_import.append(onnx.helper.make_opsetid(NCHWC_DOMAIN, 1))
            g.opset[NCHWC_DOMAIN] = 1
        if self.changed:  # say which CPUs the model is for (onnxruntime does not check)
            props = {p.key: p for p in g.model.metadata_props}
            entry = props.get(BLOCK_SIZE_KEY) or g.model.metadata_props.add()
            entry.key, entry.value = BLOCK_SIZE_KEY, str(self.block)
        # the original filters and biases, and what else only replaced nodes read (Resize's
        # roi and scales), initializers or Constant nodes (a pipeline without
        # constants-to-initializers first left those, ~2x layout_cdla's file); not a scale or
        # zero point a quantization annotation names (as eliminate-dead-code keeps them)
        noted = g.annotation_parameters()
        for name in {name for name, _ in self.filters} | set(self.biases) | self.released:
            if g.use_count(name) or g.is_graph_input(name) or name in noted:
                continue
            if name in g.initializers:
                g.remove_initializer(name)
            elif (node := g.producer_node(name)) is not None and _is_constant_node(node):
                g.remove_node(node)


_UNARY_DEFAULT = {op for domain, op in _UNARY if domain == ""}


def _activation_bound(
    op: str, params: Sequence[float], bound: float, depthwise_input: float = 0.0
) -> float:
    """A bound on |act(v)| for |v| ≤ `bound` (math.inf: none). `depthwise_input`: the bound on
    the padded input channels a depthwise Conv multiplies by its zero filters (v = x·0 + 0)."""
    if not depthwise_input < _FINITE_PAD:
        return math.inf  # inf·0 = NaN, which every activation keeps
    if op in ("", "Relu", "Tanh", "QuickGelu", "HardSwish"):  # (no parameters read)
        return bound  # |relu(v)|, |tanh(v)|, |v·σ(αv)|, |v·clip(v/6 + ½, 0, 1)| ≤ |v|
    if op == "Sigmoid":
        return 1.0 if bound < _FINITE_PAD else math.inf  # σ(NaN) = NaN
    # a NaN or infinite α or β may make α·0 NaN; Clip's bounds may be ±inf (max(v, −inf) = v),
    # not NaN (what MLAS's min/max make of one is not ours to guess)
    finite = all(map(math.isfinite, params))
    if op == "HardSigmoid" and len(params) == 2 and finite:
        return 1.0 if bound < _FINITE_PAD else math.inf
    if op == "LeakyRelu" and len(params) <= 1 and finite:
        alpha = params[0] if params else 0.01
        return bound * max(1.0, abs(alpha))
    if op == "Clip" and len(params) == 2 and not any(map(math.isnan, params)):
        if not bound < _FINITE_PAD:
            return math.inf  # clip(NaN) is NaN or a bound, depending on the kernel
        # min(max(v, lo), hi) is monotone: its largest |value| is at v = ±bound (a one-sided
        # Clip's other bound is ±float32 max, which v never reaches)
        low, high = params
        return max(abs(min(max(v, low), high)) for v in (-bound, bound))
    return math.inf


# FusedConv activations onnxruntime's nchwc Conv applies: those of GetFusedActivationAttr, which
# its FusedConv shares (Relu, Tanh, Sigmoid, LeakyRelu [α], Clip [min, max], HardSigmoid [α, β]
# and, in 1.32, HardSwish; measured alike on 1.32: both refuse Silu, Elu and Gelu; FusedConv a
# wrong parameter count). The installed onnxruntime's FusedConv is asked, which needs no NCHWc kernels or block
# size (a `block_size` given for another machine), so a version with more activations takes more.
@functools.cache
def _activation_failure(attributes: tuple[bytes, ...]) -> str:
    """Why the installed onnxruntime refuses a FusedConv with the serialized `activation` /
    `activation_params` attributes, or "": a one-node probe (x[1,1,1,1], W[1,1,1,1]) loaded and
    run at ORT_DISABLE_ALL, once per process and attribute set."""
    from onnx import helper

    from graphopt.backends.onnxruntime import PROBE_IR_VERSION, probe_failure

    conv = _node("FusedConv", ["x", "W"], ["y"], "activation_probe", _MS_DOMAIN)
    for serialized in attributes:
        conv.attribute.add().ParseFromString(serialized)
    weight = onnx.TensorProto(name="W", dims=[1, 1, 1, 1], data_type=_FLOAT)
    weight.raw_data = np.ones(1, np.float32).tobytes()
    one = [helper.make_tensor_value_info(t, _FLOAT, [1, 1, 1, 1]) for t in ("x", "y")]
    graph = helper.make_graph([conv], "activation_probe", one[:1], one[1:], [weight])
    imports = [helper.make_opsetid("", 13), helper.make_opsetid(_MS_DOMAIN, 1)]
    probe = helper.make_model(graph, opset_imports=imports, ir_version=PROBE_IR_VERSION)
    try:
        why = probe_failure(probe, {"x": np.ones((1, 1, 1, 1), np.float32)})
    except ImportError:  # (a dependency; nothing to judge by without it)
        return ""
    return why or ""


# The activations every onnxruntime graphopt supports (1.18+) applies, by the number of
# activation_params each reads (None: reads none, takes any): no probe needed for them (a probe
# costs ~0.8 ms once per process; ppocr_det has 4 activation attribute sets, 3 of them these)
_ALWAYS_APPLIED: dict[bytes, int | None] = {
    b"Relu": None,
    b"Tanh": None,
    b"Sigmoid": None,
    b"LeakyRelu": 1,
    b"Clip": 2,
    b"HardSigmoid": 2,
}


def _always_applied(fused: list[onnx.AttributeProto]) -> bool:
    """Whether the `activation` / `activation_params` attributes `fused` name an activation of
    `_ALWAYS_APPLIED` with the float parameters it reads."""
    by_name = {a.name: a for a in fused}
    activation, params = by_name.get("activation"), by_name.get("activation_params")
    if activation is None or activation.type != _STRING or activation.s not in _ALWAYS_APPLIED:
        return False
    count = _ALWAYS_APPLIED[activation.s]
    return count is None or (
        params is not None and params.type == _FLOATS and len(params.floats) == count
    )


def _refused_activation(node: onnx.NodeProto) -> str:
    """Why `node`'s fused activation cannot go into an nchwc Conv, or "" (none, or one the
    installed onnxruntime applies). The nchwc Conv takes the FusedConv's attributes as they
    are, as onnxruntime's own transformer does; one its kernels lack is a model that does not
    load either way, whose node is left alone rather than rewritten."""
    fused = [a for a in node.attribute if a.name in _FUSED_ATTRS]
    if not fused or _always_applied(fused):
        return ""
    why = _activation_failure(tuple(a.SerializeToString() for a in fused))
    if not why:
        return ""
    activation = next((a for a in fused if a.name == "activation"), None)
    named = "(none)" if activation is None else _text(activation.s) or "(not a string)"
    return f"onnxruntime's FusedConv and nchwc Conv refuse activation {named}: {why}"


def _empty_list_attribute(node: onnx.NodeProto) -> str:
    """The name of an attribute of `node` given as a list of no values, or "". The nchwc node's
    attributes are rebuilt from their values (`_attributes`), and make_attribute infers no type
    from an empty list: a FusedConv(activation="Relu", activation_params=[]), which onnxruntime
    runs, made the pass raise."""
    for a in node.attribute:
        if a.type in (_INTS, _FLOATS, _STRINGS) and not (
            len(a.ints) or len(a.floats) or len(a.strings)
        ):
            return a.name
    return ""


def _is_nchwc_conv(node: onnx.NodeProto) -> bool:
    return node.op_type == "Conv" and node.domain == NCHWC_DOMAIN


def _is_constant_node(node: onnx.NodeProto) -> bool:
    return node.op_type == "Constant" and node.domain in _DEFAULT


def _text(value: object) -> str:
    """A string attribute's value as text; bytes that are not UTF-8 escaped (b"near\\xffest" →
    "near\\xffest"), which equals no name onnxruntime accepts, so the node is refused as
    onnxruntime refuses it (decoding raised: a PassError for the whole model)."""
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------- protobuf builders
# Nodes, attributes and tensors built field by field, equal to what onnx.helper.make_node /
# make_attribute and numpy_helper.from_array + Graph.add_initializer build (serialized bytes
# identical): a nchwc Conv with 5 attributes took 23.6 µs through the helpers, 11.4 µs so.
_INT, _INTS = onnx.AttributeProto.INT, onnx.AttributeProto.INTS
_FLOAT_ATTR, _FLOATS = onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS
_STRING, _STRINGS = onnx.AttributeProto.STRING, onnx.AttributeProto.STRINGS


def _node(
    op: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    name: str,
    domain: str = "",
    attributes: Iterable[onnx.AttributeProto] = (),
) -> onnx.NodeProto:
    """`onnx.helper.make_node(op, inputs, outputs, name=name, domain=domain or None)` with
    `attributes` (copied) attached."""
    node = onnx.NodeProto()
    node.op_type = op
    node.input.extend(inputs)
    node.output.extend(outputs)
    if name:
        node.name = name
    if domain:
        node.domain = domain
    node.attribute.extend(attributes)
    return node


def _attributes(
    node: onnx.NodeProto, rebuilt: dict[bytes, onnx.AttributeProto | None], /, **overrides: object
) -> list[onnx.AttributeProto]:
    """What `onnx.helper.make_node(..., **values)` attaches, `values` being `node`'s attribute
    values updated by `overrides`: each rebuilt from its value alone, in name order.

    `rebuilt` remembers rebuilt attributes by their serialized bytes (convolutions repeat the
    same few: ppocr_det's 62 convs took 0.64 ms rebuilding each, 0.25 ms so).
    """
    by_name: dict[str, object] = {a.name: a for a in node.attribute}
    by_name.update(overrides)
    built = []
    for key in sorted(by_name):
        value = by_name[key]
        if isinstance(value, onnx.AttributeProto):
            seen = value.SerializeToString()
            attribute = rebuilt[seen] if seen in rebuilt else _rebuilt(value)
            rebuilt[seen] = attribute
        else:
            attribute = onnx.helper.make_attribute(key, value)
        if attribute is not None:
            built.append(attribute)
    return built


def _rebuilt(a: onnx.AttributeProto) -> onnx.AttributeProto | None:
    """`make_attribute(a.name, get_attribute_value(a))` (None where that value is None)."""
    kind = a.type
    if not a.ref_attr_name:
        if kind == _INT:
            return onnx.AttributeProto(name=a.name, i=a.i, type=_INT)
        if kind == _FLOAT_ATTR:
            return onnx.AttributeProto(name=a.name, f=a.f, type=_FLOAT_ATTR)
        if kind == _STRING:
            return onnx.AttributeProto(name=a.name, s=a.s, type=_STRING)
        if kind == _INTS and len(a.ints):
            return onnx.AttributeProto(name=a.name, ints=a.ints[:], type=_INTS)
        if kind == _FLOATS and len(a.floats):
            return onnx.AttributeProto(name=a.name, floats=a.floats[:], type=_FLOATS)
    value = onnx.helper.get_attribute_value(a)  # the other kinds, raising where it raises
    return None if value is None else onnx.helper.make_attribute(a.name, value)


def _string_attribute(name: str, value: str) -> onnx.AttributeProto:
    """`onnx.helper.make_attribute(name, value)` for a str."""
    return onnx.AttributeProto(name=name, s=value.encode("utf-8"), type=_STRING)


def _add_float_initializer(graph: Graph, hint: str, dims: Sequence[int], values: np.ndarray) -> str:
    """`graph.add_initializer(hint, values.reshape(dims))` for float32 `values` (any strides):
    the bytes are written once, in C order, into the model (as `adopt_tensor` adds tensors)."""
    name = graph.unique_name(hint)
    tensor = graph.proto.initializer.add()
    tensor.dims.extend(dims)
    tensor.name = name
    tensor.raw_data = values.tobytes()
    tensor.data_type = _FLOAT
    graph.initializers[name] = tensor
    return name
