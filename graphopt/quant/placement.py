"""Where Q/DQ goes: which node inputs (and outputs) are quantized, per deployment target.

`plan(model, target)` reads an (already optimized, opset ≥ 13) model and returns a `Plan`: for
every quantizable node, the activation inputs to quantize, the weight inputs (with the
per-channel axis), the bias input, and (target `onnxruntime`) the outputs to quantize; plus the
scale-sharing groups (tensors joined through Concat / MaxPool / Resize share one scale).

Rules (DESIGN.md, "TensorRT reality"):
- `tensorrt`: quantize the activation inputs of Conv/ConvTranspose/Gemm/MatMul and both inputs of
  a residual Add (two non-constant inputs), except an Add input that comes straight from a
  Conv/Gemm (or from its fused activation) which TensorRT fuses into that Conv's epilogue; never
  the outputs, so no Q/DQ lands between a Conv and the BN/activation it fuses with.
- `onnxruntime`: the layout onnxruntime's CPU QDQ fusions turn into QLinear* kernels, as its own
  quantizer emits it: inputs and outputs of every op it has a quantized kernel for (Conv,
  MatMul, Add, Mul, Sigmoid, Concat, pools, Resize and data movement), one Q per tensor and a
  DQ that all its readers share (onnxruntime gives each reader its own DQ copy at load time);
  the output head after the last Conv (box decode, score Concat) stays float, which keeps
  sigmoid scores from sharing a scale with box offsets; a float16 Concat stays float and reads
  no DQ (onnxruntime's QLinearConcat takes no float16 scale, `ORT_NO_FLOAT16_FUSION`).
Weights are per channel on the axis the target's kernels scale: the output channels of Conv,
Gemm and MatMul(X, W); a MatMul's or Gemm's constant first input (Y = W·X) per tensor (no
target's kernel scales A per row, `MATMUL_A_WEIGHT_AXIS`), its other input the activation (both
inputs where both are activations); for ConvTranspose ([C_in, C_out/group, k...]) axis 0, the input channels, for
`tensorrt` and axis 1 (per tensor when grouped) for `onnxruntime` (`convtranspose_weight_axis`).
Add inputs inside a Conv's `graphopt.analysis.fuse_ops` group are the "fused" ones (op-type
rules decide where the partitioner fails). `plan` indexes the model once (the `Graph` it is
given) and runs shape inference once (`graphopt.analysis.shape_facts`, which the partitioner
reuses); the fusion groups stay on the `Plan` for the sensitivity search.

This module only decides; `graphopt.quant.qdq` rewrites the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import onnx

from graphopt.analysis import fuse_ops, shape_facts
from graphopt.ir import Graph
from graphopt.passes.base import PassContext

log = logging.getLogger("graphopt.quant")

TARGETS = ("tensorrt", "onnxruntime")
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# ops whose data inputs and output share one scale; onnxruntime requantizes Concat inputs itself
# (QLinearConcat), and a shared scale there costs the narrower branch its resolution
SCALE_SHARING_OPS = {
    "tensorrt": ("Concat", "MaxPool", "Resize"),
    "onnxruntime": ("MaxPool", "Resize"),
}
# activations that TensorRT fuses into the producing Conv (with x*sigmoid(x) recognised below)
FUSED_ACTIVATIONS = ("Relu", "Sigmoid", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Tanh")

# onnxruntime: op → indices of the data inputs its QDQ fusions quantize (None: all inputs)
ORT_OPS: dict[str, tuple[int, ...] | None] = {
    "Conv": (0,),
    "ConvTranspose": (0,),
    "Gemm": (0,),
    "MatMul": (0, 1),
    "Add": (0, 1),
    "Mul": (0, 1),
    "Sigmoid": (0,),
    "Concat": None,
    "MaxPool": (0,),
    "AveragePool": (0,),
    "GlobalAveragePool": (0,),
    "Resize": (0,),
    "LeakyRelu": (0,),
    "Relu": (0,),
    "Clip": (0,),
    "Transpose": (0,),
    "Reshape": (0,),
    "Squeeze": (0,),
    "Unsqueeze": (0,),
    "Flatten": (0,),
    "Slice": (0,),
    "Split": (0,),
    "Pad": (0,),
    "Softmax": (0,),
}

FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)  # float16: Q/DQ-19

# onnxruntime: ops whose Q/DQ form (every input from a DequantizeLinear, the output into a
# QuantizeLinear) onnxruntime's QDQ fusion turns into a kernel that takes no float16 scale:
# DQ → Concat → Q becomes QLinearConcat, and at ORT_ENABLE_EXTENDED and ORT_ENABLE_ALL (its
# default) the session fails to load ("Type 'tensor(float16)' of input parameter (…_scale) of
# operator (QLinearConcat) … is invalid"; common_det converted to float16 with
# onnxconverter_common). Such a float16 node is not quantized and reads no DQ output
# (`Plan.raw_readers`), nor do the ops before it that onnxruntime's QDQPropagationTransformer
# moves a DQ forward through (qdq_propagation.cc, CanNodePropagate): a DQ → Slice → Concat
# became Slice → DQ → Concat, and the fusion followed.
ORT_NO_FLOAT16_FUSION = ("Concat",)
ORT_QDQ_PROPAGATING = ("MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice")


@dataclass
class NodePlan:
    """What to quantize around one node."""

    node: str
    op_type: str
    activations: list[int] = field(default_factory=list)  # input indices
    weights: dict[int, int | None] = field(default_factory=dict)  # input index → channel axis
    bias: int | None = None  # input index of a constant bias
    outputs: list[int] = field(default_factory=list)  # output indices (onnxruntime target)
    constants: list[int] = field(default_factory=list)  # constant operands quantized per tensor


@dataclass
class Plan:
    target: str
    nodes: dict[str, NodePlan]
    # tensor → representative of its scale-sharing group
    share: dict[str, str] = field(default_factory=dict)
    # tensor → (lo, hi): values outside change no reader's result noticeably (activation-aware)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    # the FuseOps partition the placement followed (node names per group); None: not known
    groups: list[list[str]] | None = None
    # nodes that read no DequantizeLinear output, not even one made for another reader (target
    # onnxruntime: a float16 Concat and the data movement before it, `ORT_NO_FLOAT16_FUSION`)
    raw_readers: frozenset[str] = frozenset()
    # the largest |q| of an int8 weight (`qdq.quantize_weight`): 127, or 64 where quantize's
    # `reduce_range` asks for 7-bit weights (`qdq.REDUCED_WEIGHT_MAX`)
    weight_max: int = 127

    def tensors(self, graph: Graph, keep_float: Collection[str] = ()) -> list[str]:
        """Activation tensors that get a Q/DQ (in node order), given nodes kept in float."""
        seen: dict[str, None] = {}
        for name, np_ in self.nodes.items():
            if name in keep_float:
                continue
            node = graph.nodes[name]
            for i in np_.activations:
                seen[node.input[i]] = None
            for i in np_.outputs:
                seen[node.output[i]] = None
        return list(seen)

    def calibrated(self, graph: Graph, keep_float: Collection[str] = ()) -> list[str]:
        """Tensors whose statistics are needed: the quantized ones and their scale groups."""
        wanted = self.tensors(graph, keep_float)
        groups = {self.share.get(t, t) for t in wanted}
        extra = [t for t, rep in self.share.items() if rep in groups and t not in wanted]
        return wanted + sorted(extra)


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference can type."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types: dict[str, int] = {}
    g = inferred.graph
    for vi in [*g.input, *g.output, *g.value_info]:
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for t in g.initializer:
        types[t.name] = t.data_type
    return types


def plan(model: onnx.ModelProto, target: str, graph: Graph | None = None) -> Plan:
    """Decide Q/DQ placement for `model` (opset ≥ 13) and `target`.

    `graph`: `model` indexed already (it is read, never changed); indexed here when None."""
    graph = graph or Graph(model)
    ctx = PassContext()  # holds the facts for the partitioner
    facts = shape_facts(graph, ctx)  # one inference, over a copy without the weights' bytes
    groups = _fusion_groups(graph, ctx)
    fused = _fused_into_compute(graph, groups)

    def dtype(t: str) -> int:
        return facts.dtype(t) or 0

    def is_float_activation(t: str) -> bool:
        return bool(t) and not graph.is_constant(t) and dtype(t) in FLOAT_TYPES

    feeds_compute = _reaches_compute(graph)
    raw = _float16_unfusable(graph, dtype) if target == "onnxruntime" else set()
    nodes: dict[str, NodePlan] = {}
    for node in graph.toposort():
        if node.domain not in ("", "ai.onnx") or node.name in raw:
            continue
        op = node.op_type
        p = NodePlan(node.name, op)
        if target == "onnxruntime" and op not in COMPUTE_OPS and node.name not in feeds_compute:
            continue  # the output head after the last Conv stays float (scores keep precision)
        if op in COMPUTE_OPS:
            _plan_compute(graph, node, p, is_float_activation, target)
        if target == "tensorrt":
            if op == "Add" and len(node.input) == 2:
                ins = list(node.input)
                if all(is_float_activation(t) for t in ins) and ins[0] != ins[1]:
                    # only a single-use input can become the producing Conv's epilogue
                    from_compute = [t in fused and graph.use_count(t) == 1 for t in ins]
                    if all(from_compute):
                        from_compute[0] = False  # one of them keeps the Conv epilogue fusion
                    p.activations = [i for i in (0, 1) if not from_compute[i]]
        elif op in ORT_OPS:
            if op not in COMPUTE_OPS:
                indices = ORT_OPS[op]
                idx = range(len(node.input)) if indices is None else indices
                for i in idx:
                    if i >= len(node.input) or not node.input[i]:
                        continue
                    t = node.input[i]
                    if is_float_activation(t):
                        p.activations.append(i)
                    elif op in ("Add", "Mul") and graph.is_constant(t) and dtype(t) in FLOAT_TYPES:
                        p.constants.append(i)
                if op in ("Add", "Mul") and not p.activations:
                    p.constants = []  # an all-constant op is folded elsewhere, not quantized
            p.outputs = [
                i
                for i, t in enumerate(node.output)
                if t and dtype(t) in FLOAT_TYPES and not graph.is_graph_output(t)
            ]
        if p.activations or p.weights:
            nodes[node.name] = p
    return Plan(
        target,
        nodes,
        _scale_groups(graph, SCALE_SHARING_OPS[target]),
        _reader_bounds(graph, lambda s: _sigmoid_output_linear(graph, s, nodes)),
        groups,
        frozenset(raw),
    )


def _float16_unfusable(graph: Graph, dtype: Callable[[str], int]) -> set[str]:
    """Target onnxruntime: names of the float16 nodes of `ORT_NO_FLOAT16_FUSION` and, up their
    inputs, of the `ORT_QDQ_PROPAGATING` ops that feed them: none may read a DQ output."""
    fp16 = onnx.TensorProto.FLOAT16
    stack = [
        n
        for n in graph.toposort()
        if n.op_type in ORT_NO_FLOAT16_FUSION
        and n.domain in ("", "ai.onnx")
        and any(dtype(t) == fp16 for t in (*n.input, *n.output) if t)
    ]
    out: set[str] = set()
    while stack:
        node = stack.pop()
        if node.name in out:
            continue
        out.add(node.name)
        for t in node.input:
            producer = graph.producer_node(t) if t else None
            if (
                producer is not None
                and producer.op_type in ORT_QDQ_PROPAGATING
                and producer.domain in ("", "ai.onnx")
            ):
                stack.append(producer)
    return out


def _plan_compute(
    graph: Graph, node: onnx.NodeProto, p: NodePlan, is_act: Callable[[str], bool], target: str
) -> None:
    op = node.op_type
    ins = list(node.input)
    if op in ("MatMul", "Gemm") and len(ins) >= 2 and is_act(ins[1]) and graph.is_constant(ins[0]):
        value = graph.constant(ins[0])  # Y = W·X (Gemm: α·W·X + β·C): the weight is A
        if value is not None and value.dtype in ("float32", "float16"):
            p.activations.append(1)
            p.weights[0] = MATMUL_A_WEIGHT_AXIS  # (a Gemm's C, bias of no channel axis: float)
        return
    if not ins or not is_act(ins[0]):
        return
    p.activations.append(0)
    if len(ins) < 2 or not ins[1]:
        return
    w = ins[1]
    if graph.is_constant(w):
        value = graph.constant(w)
        if value is None or value.dtype not in ("float32", "float16"):
            return
        if op == "Conv":
            axis: int | None = 0
        elif op == "ConvTranspose":
            axis = convtranspose_weight_axis(target, graph.attr(node, "group", 1))
        elif op == "Gemm":
            axis = 0 if graph.attr(node, "transB", 0) else 1
        else:  # MatMul: W [K, N] per output column, X of any rank (see below)
            axis = value.ndim - 1 if value.ndim == 2 else None
        p.weights[1] = axis
        if op in ("Conv", "ConvTranspose", "Gemm") and len(ins) > 2 and graph.is_constant(ins[2]):
            p.bias = 2
    elif op in ("MatMul", "Gemm") and is_act(w):  # two activations: both quantized
        p.activations.append(1)


# MatMul(X, W [K, N]): per column (axis 1) on both targets, whatever X's rank. TensorRT's guide
# lists per-channel weights for "MatMul where the second input is constant and both input
# matrices are 2D", yet builds them behind 3-D activations too: NVIDIA ModelOpt's ONNX INT8
# flow (modelopt/onnx/quantization/int8.py: onnxruntime's quantize_static, per_channel=True,
# no MatMul override, so QDQMatMul's default axis 1) quantizes ViT-B/16's [1, 197, 768]
# MatMuls so, its example for TensorRT 10/11 (examples/onnx_ptq); onnxruntime's BERT example
# for TensorRT (onnxruntime-inference-examples, quantization/nlp/bert/trt: MatMul axis 1,
# [1, S, 768]) reports INT8 F1 on TensorRT 8.2.2.1. The one failure found is TensorRT 8.0.3
# (Myelin "mis-matched Scale shape", onnxruntime#10045), older than graphopt targets. Per tensor
# would cost a narrow column its resolution (92 % vs 8 % error on a 20x smaller column,
# tests/test_quant_review13b_matmul_rank.py). A W of rank 3+ (batched) stays per tensor.

# Y = W·X with a constant W [..., M, K] (a transposed linear layer): per tensor for both targets.
# Its per-channel axis would be the output rows (-2), but neither target's kernels take that:
# TensorRT scales weights per channel only for "MatMul where the second input is constant and
# both input matrices are 2D" (Developer Guide, Explicit Quantization), and onnxruntime's
# QLinearMatMul, which its QDQ fusion makes of DQ → MatMul → Q, enforces a scalar A scale
# ("QLinearMatmul : input scale must be a scalar or 1D tensor of size 1", CPU kernel; per row
# is the ONNX spec's, not the kernel's); onnxruntime's own QDQMatMul would scale an initializer
# A on axis 1, K, a scale per summed index, which factors out of no integer product
MATMUL_A_WEIGHT_AXIS: int | None = None


def convtranspose_weight_axis(target: str, group: int) -> int | None:
    """The per-channel axis of a ConvTranspose weight W [C_in, C_out/group, k...], None: per
    tensor.

    `tensorrt`: axis 0, one scale per input channel, at any `group`: input channel c belongs to
    group c // (C_in/group) alone, and y_o = Σ_c,k x_c·s_c·q_cok, so s_c scales one input
    channel of one group (it folds into x_c, as a Conv's output-channel scale folds into y).
    TensorRT's deconvolution kernels take no other: "the kernels assume per-input-channel quant
    for ConvTranspose ... We don't support per-output-channel quant for ConvTranspose"
    (NVIDIA/TensorRT#2380, 2022-12-02); axis 1 gave wrong results (#1694) or no engine (#1519);
    NVIDIA ModelOpt exports axis 0.
    `onnxruntime`: axis 1 at group 1, per output channel as its own quantizer writes it
    (onnxruntime/python/tools/quantization/operators/conv.py, QDQConv: default_axis 1 for
    ConvTranspose) and as the int32 bias needs (s_b = s_x·s_w per output channel); per tensor
    when grouped (axis 1 then holds C_out/group scales, which no bias channel maps to)."""
    if target == "tensorrt":
        return 0
    return 1 if group == 1 else None


def _reaches_compute(graph: Graph) -> set[str]:
    """Names of nodes from which some Conv/ConvTranspose/Gemm/MatMul is reachable downstream."""
    reach: set[str] = set()
    for node in reversed(graph.toposort()):
        for t in node.output:
            for c in graph.consumer_nodes(t):
                if c.op_type in COMPUTE_OPS or c.name in reach:
                    reach.add(node.name)
                    break
            if node.name in reach:
                break
    return reach


def _fused_into_compute(graph: Graph, groups: list[list[str]] | None) -> set[str]:
    """Tensors computed by a Conv/Gemm, or by an activation fused into it (TensorRT epilogue):
    per the fusion `groups`, or by op-type rules when there are none."""
    out: set[str] = set()
    if groups is not None:
        for group in groups:
            members = [graph.nodes[n] for n in group if n in graph.nodes]
            if any(n.op_type in COMPUTE_OPS for n in members):
                for n in members:
                    out.update(t for t in n.output if t)
        return out
    for node in graph.toposort():
        op = node.op_type
        ins = [t for t in node.input if t]
        if op in ("Conv", "ConvTranspose", "Gemm") or (
            op in FUSED_ACTIVATIONS and ins and ins[0] in out and graph.use_count(ins[0]) <= 2
        ):
            out.update(node.output)
        elif op == "Mul" and len(ins) == 2:
            a, b = ins
            pa, pb = graph.producer_node(a), graph.producer_node(b)
            # x * sigmoid(x) with x from a Conv (SiLU / Swish)
            for x, s in ((a, pb), (b, pa)):
                if (
                    x in out
                    and s is not None
                    and s.op_type in FUSED_ACTIVATIONS
                    and s.input[0] == x
                ):
                    out.update(node.output)
    return out


def _fusion_groups(graph: Graph, ctx: PassContext | None = None) -> list[list[str]] | None:
    """The FuseOps partition of `graph` itself (not of `graph.model`, which would be indexed
    and shape-inferred again), with the shape facts `ctx` holds; None when the partitioner
    fails."""
    try:
        return [list(g) for g in fuse_ops(graph, ctx=ctx)]
    except Exception as e:  # the partitioner is optional guidance: fall back to op rules
        log.info("fuse_ops failed (%s); Q/DQ placement falls back to op-type rules", e)
        return None


# Where a reader saturates: σ(x) is within 1e-4 of 0 or 1 beyond ±9.2; ReLU ignores negatives.
# (SiLU x·σ(x) also nearly vanishes below -8, but clipping its input there measurably hurt
# common_det's boxes on onnxruntime, so SiLU inputs keep their calibrated range.)
_SIGMOID_RANGE = (-9.25, 9.25)

# Ops through which σ's output may flow for that clip to stay harmless: they move values or
# combine them (piecewise) linearly, so σ's change, at most σ(-9.25) ≈ 9.6e-5, stays that
# small. Others can blow it up: log σ(x) at x = -14 read -9.25 (log-sigmoid, logit, inverse
# sigmoid), a threshold above 0.9999 flips, TopK/NonMaxSuppression order every score past
# 0.9999 as a tie, a ReduceSum adds it up once per element (a 64x64 map's background: 0.39).
_LINEAR_READERS = frozenset(
    {
        "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice",
        "Split", "Concat", "Gather", "Expand", "Tile", "Pad", "Resize", "Neg", "Add", "Sub",
        "Mul", "Relu", "Clip", "Max", "Min", "MaxPool", "AveragePool", "GlobalAveragePool",
        "ReduceMax", "ReduceMin", "ReduceMean",
    }
)  # fmt: skip


def _sigmoid_output_linear(graph: Graph, sig: onnx.NodeProto, planned: Collection[str]) -> bool:
    """Whether every use of Sigmoid `sig`'s output, followed through `_LINEAR_READERS` (and a
    Div's numerator), ends in a graph output or a planned node (whose input is quantized, a
    step far above 1e-4): then clipping σ's input at ±9.25 changes no result noticeably."""
    seen: set[str] = set()
    stack = [t for t in sig.output if t]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        for r in graph.consumer_nodes(t):
            if r.name in planned:
                continue
            linear = r.domain in ("", "ai.onnx") and (
                r.op_type in _LINEAR_READERS
                or (r.op_type == "Div" and t == r.input[0] and t not in r.input[1:])
            )
            if not linear or t not in r.input:  # (an If/Loop body reading it: not followed)
                return False
            stack.extend(o for o in r.output if o)
    return True


def _reader_bounds(
    graph: Graph, sigmoid_ok: Callable[[onnx.NodeProto], bool] = lambda _: True
) -> dict[str, tuple[float, float]]:
    """Range outside which every reader of a tensor saturates, so clipping there is harmless.

    x read only by σ(x), each `sigmoid_ok` (its output used so that σ's change stays ~1e-4,
    `_sigmoid_output_linear`): [-9.25, 9.25]; only by Relu: [0, +inf); only by Clip(lo, hi)
    with constant bounds: [lo, hi].
    """
    bounds: dict[str, tuple[float, float]] = {}
    for t in list(graph.consumers):
        readers = graph.consumer_nodes(t)
        if not readers or graph.is_graph_output(t):
            continue
        lo, hi = -float("inf"), float("inf")
        ok = True
        kinds: set[object] = set()
        for r in readers:
            if r.op_type == "Sigmoid":
                kinds.add("sigmoid")
                ok = ok and sigmoid_ok(r)
            elif r.op_type == "Mul" and len(r.input) == 2 and t in r.input:
                other = r.input[1] if r.input[0] == t else r.input[0]
                sig = graph.producer_node(other)
                if sig is not None and sig.op_type == "Sigmoid" and sig.input[0] == t:
                    kinds.add("silu")
                else:
                    ok = False
            elif r.op_type == "Relu":
                kinds.add("relu")
            elif r.op_type == "Clip" and len(r.input) >= 3 and r.input[0] == t:
                cmin, cmax = graph.constant(r.input[1]), graph.constant(r.input[2])
                if cmin is None or cmax is None or cmin.size != 1 or cmax.size != 1:
                    ok = False
                else:  # (a bound of shape [1], which onnxruntime takes: float() refuses it)
                    kinds.add(("clip", float(cmin.reshape(())), float(cmax.reshape(()))))
            else:
                ok = False
        if not ok or not kinds:
            continue
        if kinds == {"relu"}:
            lo = 0.0
        elif kinds == {"sigmoid"}:
            lo, hi = _SIGMOID_RANGE
        elif len(kinds) == 1:
            kind = next(iter(kinds))
            if isinstance(kind, tuple):
                lo, hi = kind[1], kind[2]
            else:
                continue
        else:
            continue
        bounds[t] = (lo, hi)
    return bounds


def _scale_groups(graph: Graph, ops: tuple[str, ...]) -> dict[str, str]:
    """Union-find over tensors joined by `ops` (e.g. Concat/MaxPool/Resize: data input ↔ output)."""
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        parent.setdefault(t, t)
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for node in graph.toposort():
        if node.op_type not in ops or not node.output:
            continue
        data = list(node.input) if node.op_type == "Concat" else list(node.input[:1])
        for t in data:
            if t and not graph.is_constant(t):
                a, b = find(t), find(node.output[0])
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {t: find(t) for t in parent}
