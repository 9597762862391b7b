"""Structural keys for cross-model common-subexpression elimination (hash-consing).

Every tensor of the merged graph has one identity: its merged name. A constant's identity comes
from its value, never its name: `ConstantTable.key(array)` is a digest of dtype, shape and bytes,
so an initializer and a `Constant` node holding the same bits get the same key (merge keeps two
constants of one model apart all the same, the k-th of a key in one model shared with the k-th
in another: `merge._Builder._constant_identity`). A node's key is

    key(n) = (domain, op_type, canonical attributes, (identity of each input, in order),
              (which optional outputs are requested), (its device placements, IR 10))

and output k of a node is the k-th output of the first node with that key. Processing nodes in
topological order makes this the bottom-up structural hash: two tensors are identified iff they
are computed by the same ops, with the same attributes, from identified inputs.

With `tolerance > 0`, floating-point constants (float16, float32, float64: bfloat16 and the
float8s, ml_dtypes types, are compared bitwise) of equal dtype and shape are identified when
max|a − b| ≤ tolerance · max(max|b|, tiny) (b: of the earlier weights of the other models, the
nearest; a weight is never compared with its own model's, though two of one model both
nearest to one weight of another both get its key: merge shares it with the first, the second
keeps its own value), where both are weights
(`weight_tensors`: read only as a Conv / Gemm / MatMul / normalization weight, a bias or scale
of such an op's output, or through layout ops on the way there; not a BatchNormalization
variance or a divisor, which rescale each element by its own change); integer and bool constants,
and float constants read otherwise (Resize scales, Range bounds, a shape computed in float: a
value a little off there changes a shape or an index), are always compared bitwise.

What it does not do: identify nodes that are not provably deterministic pure functions of their
inputs (random ops, nodes with subgraph attributes, ops without a known schema); `node_key`
returns None for those, and they are never shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from graphopt.analysis.op_kinds import RANDOM_OPS
from graphopt.ir import outer_references, subgraphs
from graphopt.multitask.opsets import canonical_domain

# Ops whose outputs are not a function of their inputs and attributes alone: the random ops,
# and Dropout (deterministic in inference, but training_mode can be an input: be safe).
NONDETERMINISTIC = RANDOM_OPS | {"Dropout"}

NodeKey = tuple[str, str, tuple[bytes, ...], tuple[str, ...], tuple[bool, ...], tuple[bytes, ...]]


def value_digest(value: np.ndarray) -> str:
    """sha256 over dtype, shape and the C-order bytes of `value` (of a string tensor: each
    element's UTF-8 bytes, length first; its `tobytes()` would be the objects' addresses).
    The dtype by name too: ml_dtypes' float8_e4m3fn, float8_e4m3fnuz, int4, uint4 and
    float4_e2m1fn all have dtype.str '<V1', and equal bytes mean other values in each.
    (Not `np.ascontiguousarray`: it makes a scalar shape (1,), and a scalar 0 and a [0] were
    one constant.)"""
    arr = np.asarray(value)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str} {arr.dtype.name};".encode())
    h.update(repr(arr.shape).encode())
    if arr.dtype.kind == "O":
        for item in arr.flat:
            data = item if isinstance(item, bytes) else str(item).encode()
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    else:
        h.update(arr.tobytes(order="C"))
    return h.hexdigest()


class ConstantTable:
    """Maps constant values to a canonical identity (bitwise, or within a tolerance)."""

    def __init__(self, tolerance: float = 0.0):
        self.tolerance = float(tolerance)
        self._near: dict[str, str] = {}  # digest -> identity of a weight within tolerance
        # (dtype, shape) -> the weights others are compared with
        self._buckets: dict[tuple[str, tuple[int, ...]], list[_Rep]] = {}

    def key(self, value: np.ndarray, approximate: bool = True, owner: int | None = None) -> str:
        """The identity of `value`: equal for bitwise-equal values, and with `approximate`
        (a weight: `weight_tensors`) for values within tolerance of an earlier approximate one
        of another `owner` (a model: two near weights of one model are not compared, and stay
        two unless both are within tolerance of one weight of another model; ppocr_det's
        MobileOne scales 0.2% apart were one at tolerance 0.01, and the model merged with one
        it shared nothing with computed other values). A value that is not
        `approximate` keeps the identity of its own bits: a weight identified with a near one
        never stands in for it."""
        digest = value_digest(value)
        exact = f"const:{digest}"
        if not (approximate and self.tolerance > 0 and np.issubdtype(value.dtype, np.floating)):
            return exact
        known = self._near.get(digest)
        if known is not None:
            return known
        ident = exact
        kind = f"{value.dtype.str} {value.dtype.name}"
        bucket = self._buckets.setdefault((kind, tuple(value.shape)), [])
        # the nearest within the tolerance, not the first: ppocr_det's scales 0.19% apart, the
        # first of them stood in for a fine-tuned copy of the other at tolerance 0.01, and the
        # copy shared 24 of its 330 nodes (all 330 at 0.001)
        best = self.tolerance
        sample = _sample(value)
        for rep in bucket:
            if owner is not None and rep.owner == owner:
                continue
            # a lower bound from a few elements first: a value far from this one is passed
            # over without comparing every element (100 weights of 512 x 512 against 100:
            # 67 s, 35 s when the first within the tolerance was taken; 1.2 s so)
            with np.errstate(invalid="ignore"):
                bound = float(np.max(np.abs(sample - rep.sample), initial=0.0)) / rep.scale
            if bound > best:  # (NaN: compared in full)
                continue
            distance = _distance(value, rep.value)
            if distance <= best and (ident == exact or distance < best):
                ident, best = rep.ident, distance
        if ident == exact:
            bucket.append(_Rep(ident, np.array(value, copy=True), owner, sample, _scale(value)))
        self._near[digest] = ident
        return ident


@dataclass
class _Rep:
    """A weight other weights are compared with: its identity, value and model (`owner`),
    `_sample` of it, and `_scale` (the divisor of `_distance` when it is the second value)."""

    ident: str
    value: np.ndarray
    owner: int | None
    sample: np.ndarray
    scale: float


def _sample(value: np.ndarray) -> np.ndarray:
    """Up to 256 elements of `value` spread over it, in float64 (the same positions for every
    value of one shape)."""
    flat = value.reshape(-1)
    positions = np.linspace(0, flat.size - 1, min(flat.size, 256)).astype(np.int64)
    return flat[positions].astype(np.float64)


def _scale(value: np.ndarray) -> float:
    """max |value| over its finite entries, at least float32's tiny (`_distance`'s divisor)."""
    v64 = np.abs(value.astype(np.float64))
    finite = v64[np.isfinite(v64)]
    return max(float(np.max(finite, initial=0.0)), float(np.finfo(np.float32).tiny))


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| relative to max |b| over b's finite values; inf where NaN or infinite
    entries differ, 0 for empty values."""
    if a.size == 0:
        return 0.0
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        return float("inf")
    finite = np.isfinite(b64)
    if not np.array_equal(a64[~finite & ~np.isnan(b64)], b64[~finite & ~np.isnan(b64)]):
        return float("inf")  # infinities must match exactly
    if not finite.any():
        return 0.0
    return float(np.max(np.abs(a64[finite] - b64[finite]))) / _scale(b)


# default-domain op -> inputs that only weight the data (the output moves by about as much as
# they do): the constants a tolerance may identify. Not a BatchNormalization's variance (4):
# the output moves by the change relative to each channel's own variance, not to the largest
# (layout_cdla's span 5.6e-45..0.12 in one layer; moved by 0.9 T of the largest, T = 1e-3, the
# outputs moved by 264%)
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (0, 1, 2),
    "MatMul": (0, 1),
    "BatchNormalization": (1, 2, 3),
    "InstanceNormalization": (1, 2),
    "LayerNormalization": (1, 2),
    "GroupNormalization": (1, 2),
    "PRelu": (1,),
}
# elementwise ops whose constant operand is a weight when the other is a WEIGHT_INPUTS op's
# output (a bias after MatMul, a scale after Conv); elsewhere they compute shapes too. A Div's
# divisor is none (as a variance: the output moves by the change relative to each element)
ELEMENTWISE_WEIGHTS = frozenset({"Add", "Sub", "Mul", "Div"})
# ops that hand input 0 on with its values unchanged: a weight on its way to its op
LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"})


def weight_tensors(graph: onnx.GraphProto) -> set[str]:
    """The tensors of `graph` read only as weights: at a `WEIGHT_INPUTS` position, as the
    constant operand of an `ELEMENTWISE_WEIGHTS` op whose other operand a weight op computes,
    or as input 0 of a `LAYOUT_OPS` node or a Cast to a float type (a float16-stored weight)
    whose outputs are weights; never a graph output or a name a subgraph body reads. (Resize
    scales, Range bounds and shapes computed in float are not weights: within a tolerance
    they still change an output's shape.)"""
    readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    producer: dict[str, onnx.NodeProto] = {}
    unsafe = {o.name for o in graph.output}
    for node in graph.node:
        for k, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, k))
        for name in node.output:
            producer[name] = node
        for sub in subgraphs(node):
            unsafe |= outer_references(sub)
    weight: dict[str, bool] = {}  # filled from the last node back: readers come first

    def default(node: onnx.NodeProto) -> bool:
        return node.domain in ("", "ai.onnx")

    def weight_use(node: onnx.NodeProto, k: int) -> bool:
        if not default(node):
            return False
        if k in WEIGHT_INPUTS.get(node.op_type, ()):
            return True
        if node.op_type in ELEMENTWISE_WEIGHTS and len(node.input) == 2:
            if node.op_type == "Div" and k == 1:
                return False
            other = producer.get(node.input[1 - k])
            return other is not None and default(other) and other.op_type in WEIGHT_INPUTS
        if k == 0 and (node.op_type in LAYOUT_OPS or _casts_to_float(node)):
            return all(weight.get(o, False) for o in node.output if o)
        return False

    def judge(name: str) -> None:
        uses = readers.get(name, [])
        weight[name] = bool(uses) and name not in unsafe and all(weight_use(*u) for u in uses)

    for node in reversed(graph.node):  # (no recursion: a long Identity chain is no problem)
        for name in node.output:
            judge(name)
    for name in readers:  # initializers and inputs
        if name not in weight:
            judge(name)
    return {name for name, is_weight in weight.items() if is_weight}


FLOAT_TYPES = frozenset(
    {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
    }
)


def _casts_to_float(node: onnx.NodeProto) -> bool:
    """A Cast to a float type: it hands a float16-stored weight on as float32 (within about
    the same relative distance); a Cast to an integer type does not (2.9999 and 3.0001)."""
    if node.op_type != "Cast":
        return False
    to = next((a.i for a in node.attribute if a.name == "to"), None)
    return to in FLOAT_TYPES


def attribute_bytes(node: onnx.NodeProto) -> tuple[bytes, ...] | None:
    """Canonical serialized attributes (sorted by name, doc strings dropped); None when a
    graph-valued attribute makes the node unshareable."""
    out = []
    for attr in sorted(node.attribute, key=lambda a: a.name):
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            return None
        if attr.ref_attr_name:
            return None  # inside a function body: meaning depends on the caller
        canon = onnx.AttributeProto()
        canon.CopyFrom(attr)
        canon.ClearField("doc_string")
        out.append(canon.SerializeToString(deterministic=True))
    return tuple(out)


def is_shareable(node: onnx.NodeProto, opsets: Mapping[str, int]) -> bool:
    """Whether `node` is a deterministic pure function that may be identified with a twin."""
    if not isinstance(node.op_type, str) or not isinstance(node.domain, str):
        return False  # not UTF-8 (protobuf hands bytes over): get_schema raised TypeError
    domain = canonical_domain(node.domain)
    if node.op_type in NONDETERMINISTIC and domain == "":
        return False
    opset = opsets.get(domain)
    if opset is None:
        return False
    try:
        onnx.defs.get_schema(node.op_type, opset, domain)
    except onnx.defs.SchemaError:
        return False
    return True


def node_key(
    node: onnx.NodeProto, inputs: Sequence[str], opsets: Mapping[str, int]
) -> NodeKey | None:
    """The structural key of `node` reading merged tensors `inputs`; None if unshareable."""
    if not is_shareable(node, opsets):
        return None
    attrs = attribute_bytes(node)
    if attrs is None:
        return None
    domain = canonical_domain(node.domain)
    # where it runs (a configuration, a sharding, a pipeline stage): a node of one model placed
    # otherwise than another's twin is no twin (the shared node kept the first's placement)
    placed = tuple(d.SerializeToString(deterministic=True) for d in node.device_configurations)
    return (domain, node.op_type, attrs, tuple(inputs), tuple(bool(o) for o in node.output), placed)
