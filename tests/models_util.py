"""Helpers the pass tests share: a checked model from ONNX text, passes run by name with the
result checked, the op sequence of a model, and an initializer's value; and the small models
the model I/O tests save (`matmul_model`, `add_model`) and read back (`saved_weight`), and
one Conv the quantize tests calibrate (`one_conv_model`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
from onnx import numpy_helper

import graphopt
from graphopt.pipeline import make_pipeline


def parse(text: str) -> onnx.ModelProto:
    """Parse ONNX textual syntax; the model must pass onnx.checker (full check)."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    return model


def run(model: onnx.ModelProto, *passes: str, **options) -> onnx.ModelProto:
    """`graphopt.optimize` with exactly `passes`; the result must pass onnx.checker."""
    out = graphopt.optimize(model, make_pipeline("test", list(passes)), **options)
    onnx.checker.check_model(out, full_check=True)
    return out


def ops(model: onnx.ModelProto) -> list[str]:
    """Op types in graph order, Constant nodes included."""
    return [n.op_type for n in model.graph.node]


def initializer(model: onnx.ModelProto, name: str) -> np.ndarray:
    """The value of initializer `name`; fails the test when there is none."""
    for t in model.graph.initializer:
        if t.name == name:
            return onnx.numpy_helper.to_array(t)
    raise AssertionError(f"no initializer {name!r}")


# x [1, 64] @ WEIGHT: a model whose one 16 KiB weight (fits a pipe's buffer) the model I/O tests
# save inline, as external data, through links and into streams
WEIGHT = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)


def matmul_model() -> onnx.ModelProto:
    """y = x @ WEIGHT (MatMul node 'mm', opset 13, IR 8)."""
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(WEIGHT, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def add_model(weight: float) -> onnx.ModelProto:
    """y = x + w, w [32, 32] float32 filled with `weight` (opset 17, IR 8): 4 KiB, past the
    1 KiB from which `save_model(..., external_data=True)` writes a data file."""
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[32,32] x) => (float[32,32] y) { y = Add(x, w) }
""")
    model.graph.initializer.append(
        numpy_helper.from_array(np.full((32, 32), weight, np.float32), "w")
    )
    return model


def saved_weight(path: Path) -> float:
    """The first value of the first initializer of the model saved at `path` (an
    `add_model`'s weight)."""
    return float(numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0])[0, 0])


def one_conv_model() -> onnx.ModelProto:
    """y = Conv(x [1, 3, 8, 8], w [4, 3, 3, 3], pads 1) (opset 13, IR 8), w evenly spaced in
    [-1, 1]."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,8,8] x) => (float[1,4,8,8] y) {
          y = Conv <pads = [1, 1, 1, 1]> (x, w)
        }"""
    )
    w = np.linspace(-1.0, 1.0, 4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3)
    model.graph.initializer.append(numpy_helper.from_array(w, "w"))
    return model
