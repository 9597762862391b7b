"""Small readers of one `onnx.NodeProto`, shared by passes, analyses and quantization.

They need no `Graph`, so modules that work on a bare `ModelProto` (shape inference,
`graphopt.quant`) use the same definitions as the passes.

What it does not do: look at other nodes or the graph (see `graphopt.ir.graph`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

DEFAULT_DOMAINS = ("", "ai.onnx")


def is_default_domain(node: onnx.NodeProto) -> bool:
    """Whether `node` is a standard ONNX op (domain "" or "ai.onnx")."""
    return node.domain in DEFAULT_DOMAINS


def default_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain opset ("" or "ai.onnx"; 0 when it imports none)."""
    return next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), 0)


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
        return tensor if tensor.data_type != onnx.TensorProto.STRING else None
    for a in attrs:
        # an attribute of another type than its name says (a malformed model) is no value: its
        # field for that type is unset, and read as 0 (or an empty tensor) it gave a constant
        # that the model does not hold
        if a.name in _CONSTANT_ATTRIBUTE_TYPES and a.type != _CONSTANT_ATTRIBUTE_TYPES[a.name]:
            return None
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


_CONSTANT_ATTRIBUTE_TYPES = {
    "value": onnx.AttributeProto.TENSOR,
    "value_float": onnx.AttributeProto.FLOAT,
    "value_floats": onnx.AttributeProto.FLOATS,
    "value_int": onnx.AttributeProto.INT,
    "value_ints": onnx.AttributeProto.INTS,
}


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graph-valued attributes of `node` (If branches, Loop/Scan bodies)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def nested_bodies(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """Every If/Loop/Scan body inside `graph`, nested ones included (each before its own)."""
    for node in graph.node:
        for sub in subgraphs(node):
            yield sub
            yield from nested_bodies(sub)
