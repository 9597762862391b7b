"""Small models for the TensorRT static check's tests, and how those tests read its findings."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.trt_check import Finding, errors

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=17, domains=(), functions=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets, functions=list(functions))


def vi(name, dims, dtype=F):
    return helper.make_tensor_value_info(name, dtype, dims)


def const(name, value, dtype=None):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def messages(found: list[Finding]) -> list[str]:
    """'rule: message' of each error."""
    return [f"{f.rule}: {f.message}" for f in errors(found)]
