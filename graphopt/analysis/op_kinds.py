"""TVM's operator pattern kinds for every default-domain ONNX operator.

The kinds (and their numbers) are those of TVM's `OpPatternKind`
(`include/tvm/relay/op_attr_types.h`); the FuseOps partitioner decides what may fuse with what
from them:

- ELEMWISE: out[i] = f(in[i]), one element in, one element out, same shape (Relu, Sigmoid, Cast).
- BROADCAST: elementwise after numpy broadcasting of several inputs (Add, Mul, Where, PRelu).
- INJECTIVE: each output element is one input element, moved (Reshape, Transpose, Concat,
  Slice, Gather, Resize, Pad).
- COMM_REDUCE: commutative reductions over axes (ReduceSum, ReduceMean, ArgMax).
- OUT_EWISE_FUSABLE: complex ops whose *output* can take elementwise epilogues (Conv, Gemm,
  MatMul, pooling and Softmax, as TVM registers them in `python/tvm/relay/op/nn/_nn.py`).
- TUPLE / OPAQUE: never fused (control flow, NMS, TopK, random, sequences, strings, RNNs).

Following TVM, pooling (MaxPool, AveragePool, Global*Pool, LpPool) and Softmax are
OUT_EWISE_FUSABLE; LRN, scans (CumSum), scatters and data-dependent shapes (Compress, NonZero)
are OPAQUE. BatchNormalization and Dropout are classified as what they are
at inference (TVM's SimplifyInference turns them into broadcast Mul/Add and identity before
fusion): BROADCAST and ELEMWISE; a node of them in training mode is OPAQUE (`node_kind`). Normalizations that reduce over the input (LayerNormalization,
InstanceNormalization, GroupNormalization, ...) are OPAQUE, as TVM's nn.layer_norm is.

Every default-domain op that ONNX defines is listed below, OPAQUE ones included, so a new op
shows up as a deliberate decision rather than a silent default. Ops in other domains
(com.microsoft, custom) are OPAQUE. `node_kind` refines an op's kind from one node's attributes
and inputs where the node is not what the op is at inference (a training-mode
BatchNormalization or Dropout). What this module does not do: look at shapes (the partitioner
refines Broadcast edges into ElemWise edges from shapes itself).
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


OP_KINDS: dict[str, OpKind] = {
    **_kinds(
        OpKind.ELEMWISE,
        """
        Abs Acos Acosh Asin Asinh Atan Atanh BitCast BitwiseNot Cast CastLike Ceil Celu Cos Cosh
        Dropout Elu Erf Exp Floor Gelu HardSigmoid HardSwish Identity IsInf IsNaN LeakyRelu Log
        Mish Neg Not Reciprocal Relu Round Selu Shrink Sigmoid Sign Sin Sinh Softplus Softsign
        Sqrt Swish Tan Tanh ThresholdedRelu Clip
        """,
    ),
    **_kinds(
        OpKind.BROADCAST,
        """
        Add And BatchNormalization BitShift BitwiseAnd BitwiseOr BitwiseXor Div Equal Greater
        GreaterOrEqual Less LessOrEqual Max Mean Min Mod Mul Or Pow PRelu Sub Sum Where Xor
        QuantizeLinear DequantizeLinear
        """,
    ),
    **_kinds(
        OpKind.INJECTIVE,
        """
        Concat DepthToSpace Expand Flatten Gather GatherElements GatherND Pad Reshape Resize
        ReverseSequence Slice SpaceToDepth Split Squeeze Tile Transpose Trilu Unsqueeze Upsample
        CenterCropPad OneHot EyeLike
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
        Softmax LogSoftmax Hardmax
        """,
    ),
    **_kinds(
        OpKind.OPAQUE,
        """
        AffineGrid Attention Bernoulli BlackmanWindow CausalConvWithState Col2Im Compress
        CumProd CumSum Scatter ScatterElements ScatterND TensorScatter
        ConcatFromSequence Constant ConstantOfShape DFT Det DynamicQuantizeLinear GRU
        GridSample GroupNormalization HammingWindow HannWindow If ImageDecoder
        InstanceNormalization LRN LSTM LayerNormalization LinearAttention Loop LpNormalization
        MaxRoiPool MaxUnpool MeanVarianceNormalization MelWeightMatrix Multinomial
        NegativeLogLikelihoodLoss NonMaxSuppression NonZero Optional OptionalGetElement
        OptionalHasElement RMSNormalization RNN RandomNormal RandomNormalLike RandomUniform
        RandomUniformLike Range RegexFullMatch RoiAlign RotaryEmbedding STFT Scan SequenceAt
        SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap
        Shape Size SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer
        StringSplit SwiGLU TfIdfVectorizer TopK Unique
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


def node_kind(node: NodeProto) -> OpKind:
    """The pattern kind of one node: its op's, except where the node is not what the op is at
    inference. A BatchNormalization with training_mode=1 normalizes by the statistics of its
    input (a reduction over it, as LayerNormalization: OPAQUE), and a Dropout given a
    training_mode input drops at random when that is true (OPAQUE, as TVM's nn.dropout)."""
    kind = op_kind(node.op_type, node.domain)
    if kind == OpKind.OPAQUE:
        return kind
    if node.op_type == "BatchNormalization" and any(
        a.name == "training_mode" and a.i for a in node.attribute
    ):
        return OpKind.OPAQUE
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        return OpKind.OPAQUE
    return kind
