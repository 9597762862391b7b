"""Small readers of one `onnx.NodeProto`, shared by passes, analyses and quantization.

They need no `Graph`, so modules that work on a bare `ModelProto` (shape inference,
`graphopt.quant`) use the same definitions as the passes.

What it does not do: look at other nodes or the graph (see `graphopt.ir.graph`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

DEFAULT_DOMAINS = ("", "ai.onnx")


def is_default_domain(node: onnx.NodeProto) -> bool:
    """Whether `node` is a standard ONNX op (domain "" or "ai.onnx")."""
    return node.domain in DEFAULT_DOMAINS


def default_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain opset ("" or "ai.onnx"; 0 when it imports none). Of a domain
    imported twice, the last import: what onnxruntime and the Graph's index read."""
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    return versions[-1] if versions else 0


def attribute_value(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """The Python value of attribute `name` of `node` (`default` when it has none)."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The value of a `Constant` node as a TensorProto (dense numeric forms only: None for
    sparse and string constants). A `value` tensor is returned as it is (not copied)."""
    attrs = node.attribute[:]  # built in C, once (layout_cdla has 878 Constant nodes)
    kinds = onnx.AttributeProto
    if len(attrs) == 1 and attrs[0].name == "value" and attrs[0].type == kinds.TENSOR:
        tensor = attrs[0].t
        untyped = tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED)
        return None if untyped else tensor
    if mistyped_constant(attrs):
        # an attribute of another type than its name says (a malformed model) is no value: its
        # field for that type is unset, and read as 0 (or an empty tensor) it gave a constant
        # that the model does not hold
        return None
    for a in attrs:
        if a.name == "value":
            return a.t if a.t.data_type != onnx.TensorProto.STRING else None
        if a.name == "value_float":
            return numpy_helper.from_array(np.array(a.f, dtype=np.float32))
        if a.name == "value_floats":
            return numpy_helper.from_array(np.array(list(a.floats), dtype=np.float32))
        if a.name == "value_int":
            return numpy_helper.from_array(np.array(a.i, dtype=np.int64))
        if a.name == "value_ints":
            return numpy_helper.from_array(np.array(list(a.ints), dtype=np.int64))
    return None


# The type each attribute of `Constant` has in its schema (every opset that defines it).
_CONSTANT_ATTRIBUTE_TYPES = {
    "value": onnx.AttributeProto.TENSOR,
    "value_float": onnx.AttributeProto.FLOAT,
    "value_floats": onnx.AttributeProto.FLOATS,
    "value_int": onnx.AttributeProto.INT,
    "value_ints": onnx.AttributeProto.INTS,
    "value_string": onnx.AttributeProto.STRING,
    "value_strings": onnx.AttributeProto.STRINGS,
    "sparse_value": onnx.AttributeProto.SPARSE_TENSOR,
}


def mistyped_constant(attributes: Sequence[onnx.AttributeProto]) -> bool:
    """Whether a `Constant` node's `attributes` (`node.attribute`) are not one value attribute
    of the type its name says (onnx.checker: "Mismatched attribute type"; onnxruntime reads
    such a node by the attribute's type, not its name: `value_int` given as a FLOAT is that
    float), or a `value` tensor of no element type: a malformed node whose value graphopt
    does not know (read by name, the unset field gave 0, an empty list or an untyped tensor)."""
    if len(attributes) != 1:
        return True  # none, or two values (onnx.checker: exactly one must be set)
    a = attributes[0]
    expected = _CONSTANT_ATTRIBUTE_TYPES.get(a.name)
    if expected is None or a.type != expected:
        return True
    return expected == onnx.AttributeProto.TENSOR and a.t.data_type == onnx.TensorProto.UNDEFINED


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graph-valued attributes of `node` (If branches, Loop/Scan bodies)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


# the standard ops with graph attributes (bodies)
BODY_HOLDERS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def nested_bodies(
    graph: onnx.GraphProto | onnx.FunctionProto, holders_only: bool = False
) -> Iterator[onnx.GraphProto]:
    """Every If/Loop/Scan body inside `graph` (or a function), nested ones included (each
    before its own). `holders_only`: only the attributes of `BODY_HOLDERS` and of other
    domains' nodes are read (no other standard op carries a graph; reading every node's
    attributes costs: layout_cdla's 878 Constants)."""
    for node in graph.node:
        if holders_only and node.op_type not in BODY_HOLDERS and node.domain in ("", "ai.onnx"):
            continue
        for sub in subgraphs(node):
            yield sub
            yield from nested_bodies(sub, holders_only)
