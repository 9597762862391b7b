"""`graphopt optimize` pays for the imports it needs only: networkx (~170 ms to import) is
loaded by the dominator analyses that use it (`post_dominator_tree(method="networkx")`; the
default, Lengauer–Tarjan, does not), not by optimizing with a built-in pipeline."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import onnx.helper as oh
from onnx import TensorProto
import graphopt

x = oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
y = oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
graph = oh.make_graph([oh.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
for pipeline in ("default", "ort-cpu", "tensorrt"):
    graphopt.optimize(model, pipeline)
print("networkx" in sys.modules)
from graphopt.analysis import post_dominator_tree
post_dominator_tree(model, method="networkx")
print("networkx" in sys.modules)
"""


def test_optimize_does_not_import_networkx():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert out == ["False", "True"]  # not for optimize; loaded for networkx's tree
