"""Structural keys for cross-model common-subexpression elimination (hash-consing).

Every tensor of the merged graph has one identity: its merged name. A constant's identity comes
from its value, never its name: `ConstantTable.key(array)` is a digest of dtype, shape and bytes,
so an initializer and a `Constant` node holding the same bits get the same key. A node's key is

    key(n) = (domain, op_type, canonical attributes, (identity of each input, in order),
              (which optional outputs are requested))

and output k of a node is the k-th output of the first node with that key. Processing nodes in
topological order makes this the bottom-up structural hash: two tensors are identified iff they
are computed by the same ops, with the same attributes, from identified inputs.

With `tolerance > 0`, floating-point constants of equal dtype and shape are identified when
max|a − b| ≤ tolerance · max(max|b|, tiny) (b: the first one seen); integer and bool constants
are always compared bitwise.

What it does not do: identify nodes that are not provably deterministic pure functions of their
inputs (random ops, nodes with subgraph attributes, ops without a known schema); `node_key`
returns None for those, and they are never shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from graphopt.analysis.op_kinds import RANDOM_OPS
from graphopt.multitask.opsets import canonical_domain

# Ops whose outputs are not a function of their inputs and attributes alone: the random ops,
# and Dropout (deterministic in inference, but training_mode can be an input: be safe).
NONDETERMINISTIC = RANDOM_OPS | {"Dropout"}

NodeKey = tuple[str, str, tuple[bytes, ...], tuple[str, ...], tuple[bool, ...]]


def value_digest(value: np.ndarray) -> str:
    """sha256 over dtype, shape and the C-order bytes of `value` (of a string tensor: each
    element's UTF-8 bytes, length first; its `tobytes()` would be the objects' addresses).
    The dtype by name too: ml_dtypes' float8_e4m3fn, float8_e4m3fnuz, int4, uint4 and
    float4_e2m1fn all have dtype.str '<V1', and equal bytes mean other values in each."""
    arr = np.ascontiguousarray(value)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str} {arr.dtype.name};".encode())
    h.update(repr(arr.shape).encode())
    if arr.dtype.kind == "O":
        for item in arr.flat:
            data = item if isinstance(item, bytes) else str(item).encode()
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    else:
        h.update(arr.tobytes())
    return h.hexdigest()


class ConstantTable:
    """Maps constant values to a canonical identity (bitwise, or within a tolerance)."""

    def __init__(self, tolerance: float = 0.0):
        self.tolerance = float(tolerance)
        self._exact: dict[str, str] = {}
        self._buckets: dict[tuple[str, tuple[int, ...]], list[tuple[str, np.ndarray]]] = {}

    def key(self, value: np.ndarray) -> str:
        """The identity of `value`: equal for bitwise-equal values (or within tolerance)."""
        digest = value_digest(value)
        known = self._exact.get(digest)
        if known is not None:
            return known
        ident = f"const:{digest}"
        if self.tolerance > 0 and np.issubdtype(value.dtype, np.floating):
            kind = f"{value.dtype.str} {value.dtype.name}"
            bucket = self._buckets.setdefault((kind, tuple(value.shape)), [])
            for rep_ident, rep in bucket:
                if _close(value, rep, self.tolerance):
                    ident = rep_ident
                    break
            else:
                bucket.append((ident, np.array(value, copy=True)))
        self._exact[digest] = ident
        return ident


def _close(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    if a.size == 0:
        return True
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        return False
    finite = np.isfinite(b64)
    if not np.array_equal(a64[~finite & ~np.isnan(b64)], b64[~finite & ~np.isnan(b64)]):
        return False  # infinities must match exactly
    if not finite.any():
        return True
    scale = max(float(np.max(np.abs(b64[finite]))), float(np.finfo(np.float32).tiny))
    return float(np.max(np.abs(a64[finite] - b64[finite]))) <= tolerance * scale


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
    return (domain, node.op_type, attrs, tuple(inputs), tuple(bool(o) for o in node.output))
