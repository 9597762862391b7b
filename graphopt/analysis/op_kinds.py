"""TVM's operator pattern kinds for every default-domain ONNX operator.

The kinds (and their numbers) are those of TVM's `OpPatternKind`
(`include/tvm/relay/op_attr_types.h`); the FuseOps partitioner decides what may fuse with what
from them:

- ELEMWISE: out[i] = f(in[i]), one element in, one element out, same shape (Relu, Sigmoid, Cast).
- BROADCAST: output axes map onto an input's axes in order: elementwise after numpy
  broadcasting of several inputs (Add, Mul, Where, PRelu), and, as TVM registers them,
  broadcast_to, tile and expand_dims (Expand, Tile, Unsqueeze).
- INJECTIVE: each output element is one input element, moved (Reshape, Transpose, Concat,
  Slice, Gather, Resize, Pad).
- COMM_REDUCE: commutative reductions over axes (ReduceSum, ReduceMean, ArgMax).
- OUT_EWISE_FUSABLE: complex ops whose *output* can take elementwise epilogues (Conv, Gemm,
  MatMul, pooling, Softmax, OneHot, RoiAlign, as TVM registers them).
- TUPLE / OPAQUE: never fused (control flow, NMS, TopK, random, sequences, strings, RNNs).

An ONNX op has TVM's kind of the Relay op that TVM's ONNX frontend turns it into
(`python/tvm/relay/frontend/onnx.py`, v0.19.0, the last release with Relay; patterns from
`set_attr<TOpPattern>` in `src/relay/op/**` and `register_pattern` in `python/tvm/relay/op/**`).
Where the frontend emits a few ops, the op is classified by what it computes as one node:
Celu, Gelu, HardSwish and the like are ELEMWISE (TVM's broadcasts there are against scalars,
which its FuseOps reads as elementwise edges), LpPool and LogSoftmax are OUT_EWISE_FUSABLE
(a pooling or Softmax with elementwise ops around it), the reductions composed with an
elementwise op (ReduceL2, ReduceLogSumExp) are COMM_REDUCE. Ops the frontend does not
convert (Swish, BitCast, CenterCropPad, CumProd, the window, string and sequence ops, ...) are
classified by their definition, as the TVM op closest to them is. Where this table differs
from TVM's kind it says why, next to `OP_KINDS`.

BatchNormalization and Dropout are classified as what they are at inference (TVM's
SimplifyInference turns them into broadcast Mul/Add and identity before fusion): BROADCAST and
ELEMWISE; a node of them in training mode is OPAQUE (`node_kind`). Ops that reduce over the
input and broadcast the result back over it (LayerNormalization, InstanceNormalization,
GroupNormalization, LpNormalization, MeanVarianceNormalization, DynamicQuantizeLinear, ...) are
OPAQUE: TVM's SimplifyInference (or its frontend) splits them into reductions and broadcasts,
which no one kind describes. So are ops TVM lowers to several ops of which one is opaque or a
second complex op (RNN/GRU/LSTM, Attention, MaxUnpool, Compress, the losses).

Every default-domain op that ONNX defines is listed below, OPAQUE ones included, so a new op
shows up as a deliberate decision rather than a silent default. Ops in other domains
(com.microsoft, custom) are OPAQUE. `node_kind` refines an op's kind from one node's attributes
and inputs where the node is not what the op is in general (a training-mode BatchNormalization
or Dropout, an Einsum that sums over no index). What this module does not do: look at shapes
or constants (the partitioner refines Broadcast edges into ElemWise edges from shapes itself;
Tile and Unsqueeze are BROADCAST, TVM's kind for constant repeats and axes, also when those are
computed at run time, where TVM's dyn.tile and dyn.expand_dims are INJECTIVE: the FuseOps
partitioner, which sees constants, makes such nodes INJECTIVE).
"""

from __future__ import annotations

from enum import IntEnum

from onnx import NodeProto


class OpKind(IntEnum):
    """TVM's `OpPatternKind`; a larger value is a more complex op."""

    ELEMWISE = 0
    BROADCAST = 1
    INJECTIVE = 2
    COMM_REDUCE = 3
    OUT_EWISE_FUSABLE = 4
    TUPLE = 7
    OPAQUE = 8


def _kinds(kind: OpKind, names: str) -> dict[str, OpKind]:
    return {name: kind for name in names.split()}


# Differences from TVM v0.19.0 kept on purpose (frontend = python/tvm/relay/frontend/onnx.py):
# - Mean: BROADCAST, TVM COMM_REDUCE (frontend stacks the inputs, then `mean` over the new
#   axis, valid only for equal shapes): ONNX Mean is elementwise after broadcasting, as Sum.
# - Einsum: OUT_EWISE_FUSABLE, TVM INJECTIVE (`einsum`, src/relay/op/tensor/math.cc): an
#   equation that sums over an index is a contraction (MatMul as Einsum partitions as MatMul,
#   and two contractions never chain into one group); one that sums over none is INJECTIVE,
#   TVM's kind, in `node_kind`.
# - Size: OPAQUE, TVM INJECTIVE (`ndarray_size`): it reads only its input's shape, as Shape
#   does, which TVM makes OPAQUE (`shape_of`); no output element is an input element.
# - ConstantOfShape: OPAQUE, TVM ELEMWISE (`full`/`dyn.full`; a static one is folded before
#   FuseOps): its input is a shape, its output not elementwise in it (noop.py also reads
#   ELEMWISE as "output has the first input's rank").
# - Dropout, BatchNormalization: ELEMWISE and BROADCAST, TVM OPAQUE and OUT_EWISE_FUSABLE
#   (`nn.dropout`, `nn.batch_norm`): what SimplifyInference makes of them before FuseOps.
# - QuantizeLinear, DequantizeLinear: BROADCAST; TVM's qnn.(de)quantize have no pattern and
#   are canonicalized before FuseOps into divide/round/add/clip/cast (broadcast and elementwise).
# - SwiGLU: ELEMWISE (not in TVM's frontend): Swish(A) * B of two inputs of one shape.
OP_KINDS: dict[str, OpKind] = {
    **_kinds(
        OpKind.ELEMWISE,
        """
        Abs Acos Acosh Asin Asinh Atan Atanh BitCast BitwiseNot Cast CastLike Ceil Celu Cos Cosh
        Dropout Elu Erf Exp Floor Gelu HardSigmoid HardSwish Identity IsInf IsNaN LeakyRelu Log
        Mish Neg Not Reciprocal Relu Round Selu Shrink Sigmoid Sign Sin Sinh Softplus Softsign
        Sqrt Swish Tan Tanh ThresholdedRelu Clip Trilu SwiGLU
        """,
    ),
    **_kinds(
        OpKind.BROADCAST,
        """
        Add And BatchNormalization BitShift BitwiseAnd BitwiseOr BitwiseXor Div Equal Greater
        GreaterOrEqual Less LessOrEqual Max Mean Min Mod Mul Or Pow PRelu Sub Sum Where Xor
        QuantizeLinear DequantizeLinear Expand Tile Unsqueeze
        """,
    ),
    **_kinds(
        OpKind.INJECTIVE,
        """
        Concat DepthToSpace Flatten Gather GatherElements GatherND Pad Reshape Resize
        ReverseSequence Slice SpaceToDepth Split Squeeze Transpose Upsample CenterCropPad
        GridSample AffineGrid
        """,
    ),
    **_kinds(
        OpKind.COMM_REDUCE,
        """
        ArgMax ArgMin ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
        ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
        """,
    ),
    **_kinds(
        OpKind.OUT_EWISE_FUSABLE,
        """
        Conv ConvTranspose Gemm MatMul ConvInteger MatMulInteger QLinearConv QLinearMatMul
        DeformConv Einsum AveragePool MaxPool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool
        Softmax LogSoftmax Hardmax OneHot RoiAlign MaxRoiPool
        """,
    ),
    **_kinds(
        OpKind.OPAQUE,
        """
        Attention Bernoulli BlackmanWindow CausalConvWithState Col2Im Compress
        CumProd CumSum Scatter ScatterElements ScatterND TensorScatter
        ConcatFromSequence Constant ConstantOfShape DFT Det DynamicQuantizeLinear EyeLike GRU
        GroupNormalization HammingWindow HannWindow If ImageDecoder
        InstanceNormalization LRN LSTM LayerNormalization LinearAttention Loop LpNormalization
        MaxUnpool MeanVarianceNormalization MelWeightMatrix Multinomial
        NegativeLogLikelihoodLoss NonMaxSuppression NonZero Optional OptionalGetElement
        OptionalHasElement RMSNormalization RNN RandomNormal RandomNormalLike RandomUniform
        RandomUniformLike Range RegexFullMatch RotaryEmbedding STFT Scan SequenceAt
        SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap
        Shape Size SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer
        StringSplit TfIdfVectorizer TopK Unique
        """,
    ),
}

DEFAULT_DOMAINS = ("", "ai.onnx")

RANDOM_OPS = frozenset(
    {
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
    }
)
"""Default-domain ops whose output is random, not a function of inputs and attributes."""


def op_kind(op_type: str, domain: str = "") -> OpKind:
    """The pattern kind of an ONNX op; OPAQUE for unknown ops and non-default domains."""
    if domain not in DEFAULT_DOMAINS:
        return OpKind.OPAQUE
    return OP_KINDS.get(op_type, OpKind.OPAQUE)


def einsum_sums(equation: str) -> bool | None:
    """Whether an Einsum equation sums over an index: a letter of the inputs that the output
    lacks (explicit `...->out`), or a letter given twice (implicit form, numpy's rule). None when
    the equation is not one ONNX accepts."""
    eq = equation.replace(" ", "").replace("...", "")
    lhs, arrow, rhs = eq.partition("->")
    letters = lhs.replace(",", "")
    if not all(c.isalpha() for c in letters + rhs):
        return None
    if arrow:
        return bool(set(letters) - set(rhs))
    return len(set(letters)) < len(letters)


def node_kind(node: NodeProto) -> OpKind:
    """The pattern kind of one node: its op's, except where the node is not what the op is in
    general. A BatchNormalization in training mode normalizes by the statistics of its
    input (a reduction over it, as LayerNormalization: OPAQUE): training_mode=1 (opset 14+), or
    more outputs than Y, which is how opsets 7-13 say training (onnxruntime then computes the
    batch's mean and variance; opset 14+ allows them only with training_mode=1); a Dropout given a
    training_mode input drops at random when that is true (OPAQUE, as TVM's nn.dropout), and an
    Einsum that sums over no index (a transpose, diagonal or outer product) is INJECTIVE, TVM's
    kind for every einsum."""
    kind = op_kind(node.op_type, node.domain)
    if kind == OpKind.OPAQUE:
        return kind
    if node.op_type == "BatchNormalization" and (
        len(node.output) > 1 or any(a.name == "training_mode" and a.i for a in node.attribute)
    ):
        return OpKind.OPAQUE
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        return OpKind.OPAQUE
    if node.op_type == "Einsum":
        equation = next(
            (a.s.decode("utf-8", "replace") for a in node.attribute if a.name == "equation"), None
        )  # (bytes that are not UTF-8 read as U+FFFD, no letter: no equation ONNX accepts)
        if equation is not None and einsum_sums(equation) is False:
            return OpKind.INJECTIVE
    return kind
