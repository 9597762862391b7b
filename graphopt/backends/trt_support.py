"""What TensorRT's ONNX parser accepts, per TensorRT version: a data table with its sources.

The operator lists transcribe the support matrix of the ONNX-TensorRT parser,
`docs/operators.md` in github.com/onnx/onnx-tensorrt:

- TensorRT 10.x: the matrix headed "TensorRT 10.15 supports operators in the inclusive range of
  opset 9 to opset 24" (the newest 10.x text found), cross-checked against the 10.1 GA text,
  commit 96e781103cfc4adf4a6bb557e94bac8e693f6f4c ("ONNX-TensorRT 10.1 GA release"); the ops
  the 10.15 matrix adds carry the 10.x minor that added them (`ADDED_IN`, from the changelogs).
- TensorRT 11.x: the same matrix plus the parser changes that the TensorRT 11 release notes
  list (11.0: Swish; 11.2: DFT through the FFT plugin, 5-D GridSample; 11.5: opset 25, Squeeze
  without an `axes` input). No 11.x `operators.md` text was available to transcribe, so an op the 11.x
  notes do not mention is assumed unchanged from 10.15.
- Attribute restrictions come from the matrix's "Restrictions" column and, where the column is
  silent or stale, from the importer (`onnxOpImporters.cpp` at the 10.1 GA commit above and the
  10.15-era text), e.g. the Resize coordinate-transformation modes, Resize `cubic` (the importer
  maps it to InterpolationMode::kCUBIC though the matrix names nearest and linear only), and
  "TensorRT only supports symmetric quantization".

This module is data plus lookups; the rules that read a model live in
`graphopt.backends.trt_check`. It never imports TensorRT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from graphopt.errors import BackendError

SOURCE = (
    "onnx/onnx-tensorrt docs/operators.md (TensorRT 10.15 matrix; 10.1 GA at commit "
    "96e781103cfc4adf4a6bb557e94bac8e693f6f4c) and TensorRT 11.x release notes"
)

# The newest minor release each major's table describes.
LATEST_MINOR = {10: 15, 11: 5}


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def parse_version(version: int | str | TrtVersion | None) -> TrtVersion:
    """`10`, `"11"`, `"10.8"`, `"11.4.0.106"` → TrtVersion; a bare major means its newest minor."""
    if isinstance(version, TrtVersion):
        return version
    if version is None:
        version = 10
    text = str(version).strip()
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.\d+)*(?:\.post\d+)?", text)
    if not m or int(m.group(1)) not in LATEST_MINOR:
        raise BackendError(
            f"unknown TensorRT version {text!r}: graphopt knows {', '.join(map(str, LATEST_MINOR))} "
            "(e.g. --target tensorrt=10 or tensorrt=11)"
        )
    major = int(m.group(1))
    minor = int(m.group(2)) if m.group(2) is not None else LATEST_MINOR[major]
    return TrtVersion(major, minor)


# Default-domain opset range each version's operators.md documents ("TensorRT 10.x supports
# operators in the inclusive range of opset 9 to opset N"): 20 in the 10.0 .. 10.5 texts, 22 in
# 10.6 .. 10.10 (onnx-tensorrt release commits 96e78110 10.1, 4442153a 10.6, 3b9c961a 10.10), 24
# in the 10.15 text; no 10.11 .. 10.14 text was read, so those keep 22 (a warning, never an error,
# leans early). The range is documentation, not a refusal: ModelImporter::importModel
# (ModelImporter.cpp, 10.1 and 10.10 alike) only warns below opset 7 and refuses no opset above;
# each importer reads the attributes and inputs it knows.
OPSET_RANGE = {10: (9, 24), 11: (9, 24)}
OPSET_25_SINCE = TrtVersion(11, 5)
_DOCUMENTED_HIGH_10 = ((TrtVersion(10, 15), 24), (TrtVersion(10, 6), 22), (TrtVersion(10, 0), 20))


def opset_range(version: TrtVersion) -> tuple[int, int]:
    """The default-domain opsets `version`'s operators.md documents (inclusive)."""
    low, high = OPSET_RANGE[version.major]
    if version.major == 10:
        high = next(h for since, h in _DOCUMENTED_HIGH_10 if version >= since)
    if version >= OPSET_25_SINCE:
        high = 25
    return low, high


# Ops marked "Y" in the 10.15 matrix.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


SUPPORTED_OPS_10: frozenset[str] = _words(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
    BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape
    Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum
    Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
    GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If
    ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
    LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
    MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
    ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
    RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
    ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
    RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter
    ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
    Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile
    TopK Transpose Trilu Unsqueeze Upsample Where Xor
    """
)

# Ops marked "N" in the 10.15 matrix (the parser rejects them without a plugin).
UNSUPPORTED_OPS_10: frozenset[str] = _words(
    """
    AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad
    Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder
    MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss
    Optional OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch
    SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength
    SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit
    TfIdfVectorizer Unique
    """
)

# Ops whose support starts at a given TensorRT release: during 10.x (onnx-tensorrt
# docs/Changelog.md for 10.1, 10.4 and 10.5, NVIDIA/TensorRT CHANGELOG.md for 10.14 and 10.15;
# all Y in the 10.15 matrix) and in 11.x (release notes). DeformConv: Changelog 10.1 GA "Added
# support for `DeformConv` operation"; the 10.0 GA matrix does not list it and onnxOpImporters.cpp
# at 10.0-GA has no DeformConv importer (it has 171 DEFINE_BUILTIN_OP_IMPORTERs, 10.1 GA 172).
ADDED_IN: dict[str, TrtVersion] = {
    "DeformConv": TrtVersion(10, 1),
    "BlackmanWindow": TrtVersion(10, 4),
    "HammingWindow": TrtVersion(10, 4),
    "HannWindow": TrtVersion(10, 4),
    "STFT": TrtVersion(10, 5),
    "Attention": TrtVersion(10, 14),
    "RotaryEmbedding": TrtVersion(10, 15),
    "RMSNormalization": TrtVersion(10, 15),
    "TensorScatter": TrtVersion(10, 15),
    "Swish": TrtVersion(11, 0),
    "DFT": TrtVersion(11, 2),
}


def op_support(op_type: str, version: TrtVersion) -> str:
    """`"yes"`, `"no"` (the matrix says N) or `"unknown"` (the matrix does not list the op)."""
    since = ADDED_IN.get(op_type)
    if since is not None:
        return "yes" if version >= since else "no"
    if op_type in SUPPORTED_OPS_10:
        return "yes"
    if op_type in UNSUPPORTED_OPS_10:
        return "no"
    return "unknown"


# Domains the parser reads as standard ONNX. An op of any other domain needs a plugin (or a
# model-local function, which the parser inlines) unless its op type has a built-in importer
# (`has_builtin_importer`).
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
PLUGIN_DOMAINS = frozenset({"trt", "trt.plugins"})


def has_builtin_importer(op_type: str, version: TrtVersion) -> bool:
    """Whether TensorRT `version`'s parser has a built-in importer for `op_type`, which it uses
    whatever the node's domain: parseNode (ModelImporter.cpp) looks the importer up by
    `node.op_type()` alone, before model-local functions and the plugin fallback (10.1 GA,
    96e78110, lines 155-167: `opImporters.count(nodeType)`, then
    `ctx->localFunctions().count(nodeType)`, then FallbackPluginImporter; parseNodeStaticCheck,
    lines 272-294, likewise; the same order in the 10.15-era text, where only the
    kENABLE_PLUGIN_OVERRIDE flag or a `plugin_namespace` attribute lets a registered plugin go
    first). The importers are the matrix's Y ops: the 10.1 GA `DEFINE_BUILTIN_OP_IMPORTER`s are
    exactly its Y ops less the later `ADDED_IN` ones, besides the TRT_* importers of TensorRT's
    own ONNX export (not modelled here)."""
    return op_support(op_type, version) == "yes"


# Ops of other domains that compute what the ONNX op of the same name computes with that op's
# default attributes, so the parser's by-name import keeps their meaning. onnxruntime's
# com.microsoft Gelu (contrib_defs.cc; no attributes): y = ½·x·(1 + erf(x/√2)), which the Gelu
# importer builds (approximate "none" → ActivationType::kGELU_ERF, onnxOpImporters.cpp 10.1 GA).
# Each with the attributes that op has: a node with another (com.microsoft Gelu approximate
# "tanh", which onnxruntime refuses as "Unrecognized attribute") is not that op, and TensorRT
# would read the attribute as ONNX's.
SAME_AS_ONNX: dict[tuple[str, str], frozenset[str]] = {("com.microsoft", "Gelu"): frozenset()}

# Ops of other domains named like an op with a built-in importer whose meaning is known to differ
# from the ONNX op's: the parser's by-name import makes another computation of them (or fails),
# whatever their inputs and attributes. Whole domains whose tensors are in another layout
# (onnxruntime's NchwcTransformer and layout transformer write them; graphopt's ort-cpu
# pipelines save com.microsoft.nchwc ops), and single ops of onnxruntime's contrib schemas
# (onnxruntime's get_all_operator_schema, 1.32.0).
NOT_ONNX_DOMAINS = {
    "com.microsoft.nchwc": "onnxruntime's NCHWc ops compute on channels in blocks of 8 or 16, "
    "their weights reordered to match (NchwcTransformer), where ONNX ops compute in NCHW",
    "com.ms.internal.nhwc": "onnxruntime's NHWC ops compute channels last, where ONNX ops "
    "compute in NCHW",
}
NOT_ONNX: dict[tuple[str, str], str] = {
    ("com.microsoft", "Attention"): "com.microsoft Attention projects one packed input with "
    "its own weights and bias (input, weights, bias, mask_index, past, ...; num_heads), where "
    "ONNX Attention (opset 23) takes Q, K and V",
    ("com.microsoft", "RotaryEmbedding"): "com.microsoft RotaryEmbedding takes (input, "
    "position_ids, cos_cache, sin_cache), ONNX RotaryEmbedding (opset 23) (X, cos_cache, "
    "sin_cache, position_ids): the same inputs in another order",
}


def differs_from_onnx(domain: str, op_type: str) -> str | None:
    """How `domain::op_type` is known to compute something else than ONNX `op_type`
    (`NOT_ONNX_DOMAINS`, `NOT_ONNX`), else None."""
    return NOT_ONNX_DOMAINS.get(domain) or NOT_ONNX.get((domain, op_type))


# Quantized element types of Q/DQ, by TensorRT major version (onnx TensorProto names).
# INT8 everywhere; FP8 (E4M3FN) and INT4 (weights, blocked) since 10.0; FP4 (E2M1) since 10.8.
QUANT_TYPES: dict[str, TrtVersion] = {
    "INT8": TrtVersion(10, 0),
    "FLOAT8E4M3FN": TrtVersion(10, 0),
    "INT4": TrtVersion(10, 0),
    "FLOAT4E2M1": TrtVersion(10, 8),
}

# Tensor element types TensorRT cannot hold at all (onnx TensorProto names): outside the
# matrix's type list, and without a TensorRT DataType (its FP8 is E4M3FN only).
UNSUPPORTED_DTYPES = frozenset(
    {"STRING", "COMPLEX64", "COMPLEX128", "INT16", "UINT16", "UINT32", "UINT64", "UINT4"}
    | {"FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "INT2", "UINT2"}
    | {"FLOAT6E2M3", "FLOAT6E3M2"}
)
# Element types TensorRT accepts only with a caveat.
DTYPE_CAVEATS = {
    "DOUBLE": "TensorRT casts DOUBLE down to FLOAT, clamping to ±FLT_MAX",
    "UINT8": "TensorRT accepts UINT8 only as a network input or output",
}

# Resize attribute values the importer accepts.
RESIZE_MODES = frozenset({"nearest", "linear", "cubic"})
RESIZE_COORDINATE_MODES = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
RESIZE_NEAREST_MODES = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})
PAD_MODES = frozenset({"constant", "reflect", "edge", "wrap"})
# GridSample `mode`: importGridSample (onnxOpImporters.cpp 10.1 GA and the 10.14-era text) knows
# GridSample-16's names "bilinear", "nearest" and "bicubic" (its default: "bilinear") and leaves
# any other value at InterpolationMode::kNEAREST without an error. GridSample-20 renamed them
# "linear" and "cubic": a node that names them samples nearest-neighbour in TensorRT. An absent
# `mode` is linear in both (ONNX's default at opset 20, the importer's "bilinear").
GRID_SAMPLE_MODES = frozenset({"bilinear", "nearest", "bicubic"})
# Resize with constant scales (no `sizes` input): importResize (onnxOpImporters.cpp 10.1 GA and
# the 10.14-era text alike) refuses linear scales other than 1 outside the innermost 3 axes and
# cubic ones outside the innermost 2 (canUseNDResize, importerUtils.cpp; its message says
# "only supports linear resizing on the outermost 3 dimensions", its code checks the innermost).
# With `sizes` it returns before that check.
RESIZE_INNERMOST_AXES = {"linear": 3, "cubic": 2}
# Einsum with a subscript repeated within one operand (a diagonal, "ii->i"): importEinsum (10.1
# GA) rewrites only ellipses and more than two inputs and hands the equation to IEinsumLayer,
# whose NvInfer.h notes "TensorRT does not support ellipsis, diagonal operations or more than two
# inputs for Einsum" in release/10.1 .. release/10.11 and not from release/10.12; onnx-tensorrt
# Changelog 10.12 GA: "Added support for ellipses, diagonal, and broadcasting in `Einsum`".
EINSUM_DIAGONAL_SINCE = TrtVersion(10, 12)
# TopK K: the matrix (10.1 .. 10.15) says "`K` input must be less than 3840", but the layer it
# imports to takes 3840 itself: NvInfer.h (release/10.13, release/11.1) ITopKLayer::setK
# "Currently only values up to 3840 are supported", addTopK "only values of K up to 3840", a K
# input "Values larger than 3840 will result in a runtime error"; the importer (onnxOpImporters.cpp
# 10.1 GA) does not check K. So K <= TOPK_MAX_K.
TOPK_MAX_K = 3840
# TopK `sorted`: the matrix says "`sorted` must be 1" (10.1 .. 10.15), but neither the importer
# (onnxOpImporters.cpp importTopK, 10.1 and 10.10) nor its static checker (onnxOpCheckers.cpp
# checkTopK) reads the attribute: the layer returns sorted values, which ONNX's sorted=0 ("the
# order ... is undefined") allows. A warning, not an error.
# Squeeze without axes: a static input shape always; a dynamic one since 11.5 (release notes).
SQUEEZE_WITHOUT_AXES_SINCE = TrtVersion(11, 5)
# Squeeze/Unsqueeze `axes` and CumSum `axis` given by a tensor the graph computes. Before these
# releases the importer takes only weights (an initializer or a Constant node's output):
# importSqueeze "Squeeze axes input must be an initializer!", importUnsqueeze
# "ShapeTensor ... allValuesKnown()", importCumSum "Axis input for CumSum must be an initializer!"
# (onnxOpImporters.cpp at 10.1 GA, 96e78110). onnx-tensorrt's changelog: 10.7 "Added dynamic axes
# support for Squeeze and Unsqueeze", 10.8 "Added support for dynamic axes ... CumSum"; from then
# the importer feeds the tensor to addSqueeze/addUnsqueeze/addCumulative (10.10 GA, 3b9c961a),
# and the matrix changed with it (10.7: "`axes` must be resolvable to a constant"; 10.8: "`axis`
# must be a build-time constant"), as NvInfer.h says of the layers (TensorRT 11.1: ISqueezeLayer
# "Must resolve to a constant Int32 or Int64 1D shape tensor"; addCumulative "must be a
# build-time constant"). So a computed axes TensorRT folds at build time is fine, and one that
# reads the network's input values is refused by the builder.
SQUEEZE_TENSOR_AXES_SINCE = TrtVersion(10, 7)
CUMSUM_TENSOR_AXIS_SINCE = TrtVersion(10, 8)
# OneHot `depth`: importOneHot feeds it to addOneHot as a tensor in every 10.x read (10.0 eb43908,
# 10.1, 10.10); the matrix and NvInfer.h ask "a positive build-time constant".
ONEHOT_TENSOR_DEPTH_SINCE = TrtVersion(10, 0)
# Optional outputs left unnamed (""): before 10.6 ModelImporter.cpp compares the node's output
# count, empty names included, with what the importer returns ("Node has more output tensors than
# TRT expected", 10.1 .. 10.5) and checkMaxPool requires node.output().size() == 1; 10.6 ("Fixed
# handling of optional outputs") counts the non-empty names only, and emptyOutputChecker
# (onnxOpCheckers.cpp, 10.6 .. 10.10) refuses a named one. A named extra output of MaxPool,
# LayerNormalization or BatchNormalization is refused in every 10.x, used or not.
UNNAMED_EXTRA_OUTPUTS_SINCE = TrtVersion(10, 6)
SINGLE_OUTPUT_OPS = {
    "MaxPool": "Indices",
    "LayerNormalization": "Mean and InvStdDev",
    "BatchNormalization": "the running and saved statistics",
}
# Pad with a non-constant `axes` input (onnx-tensorrt changelog, 10.4 GA).
PAD_TENSOR_AXES_SINCE = TrtVersion(10, 4)
# Slice with a non-constant `axes` input (onnx-tensorrt changelog, 10.3 GA; the 10.1 GA matrix:
# "`axes` must be an initializer").
SLICE_TENSOR_AXES_SINCE = TrtVersion(10, 3)

# Ops TensorRT runs in INT8 when their inputs come from DequantizeLinear (explicit
# quantization); after any other op a Q/DQ pair only costs precision.
INT8_COMPUTE_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Concat",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Clip",
        "Reshape",
        "Transpose",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Slice",
        "Split",
        "Resize",
        "Identity",
        "Gather",
        "Pad",
        "ReduceMean",
        "ReduceMax",
        "Softmax",
        "Attention",
    }
)
# Ops TensorRT fuses into a preceding Conv; a Q/DQ pair between them breaks the fusion.
CONV_EPILOGUE_OPS = frozenset(
    {
        "BatchNormalization",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Clip",
        "Mish",
    }
)

# If/Loop/Scan bodies (onnx-tensorrt 10.1 GA). parseNode refuses a node when the importer's name
# scopes, one per body around it, are more than this many deep ("ONNX graph contains nested
# structures that exceed the maximum allowed by TensorRT!", kMAX_NESTED_SUBGRAPHS).
MAX_NESTED_BODIES = 24
# importLoop drops a trip count that is an INT64 constant of at least INT32_MAX ("use cond input
# as loop termination") and, without a trip count, makes each scan output this long.
LOOP_MAX_TRIP_COUNT = 2**31 - 1
LOOP_DUMMY_SCAN_LENGTH = 1024
