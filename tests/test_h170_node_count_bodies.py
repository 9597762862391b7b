"""The benchmarks' node count (`bench_optimize.non_constant_nodes`, compare_peers' "nodes")
counts what a model holds however it is packaged: the nodes of If/Loop/Scan bodies and, for a
call of one of the model's own functions, the function's nodes. It counted the main graph
only, so a tool that moved the graph into a function came out as one node.
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import onnx.inliner
import onnx.parser
import pytest
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_optimize  # benchmarks/ is a folder of scripts, not a package

NESTED = """
<ir_version: 10, opset_import: ["" : 18, "local" : 1]>
nested (float[1, 4] x, bool c) => (float[1, 4] y) {
    a = local.block(x)
    k = Constant <value = float[1] {2.0}> ()
    b = Mul(a, k)
    y = If(c) <then_branch = g1 () => (float[1, 4] t) { t = Relu(b) },
               else_branch = g2 () => (float[1, 4] e) { e = local.block(b) }>
}
<domain: "local", opset_import: ["" : 18]>
block (v) => (w) {
    n = Neg(v)
    s = Sigmoid(n)
    w = Abs(s)
}
"""


def test_function_and_branch_nodes_count_as_if_inlined() -> None:
    model = onnx.parser.parse_model(NESTED)
    onnx.checker.check_model(model, full_check=True)
    inlined = onnx.inliner.inline_local_functions(model)
    assert not inlined.functions
    # Neg Sigmoid Abs, Mul, If, Relu | Neg Sigmoid Abs: the Constant is not counted
    assert bench_optimize.non_constant_nodes(model) == 9
    assert bench_optimize.non_constant_nodes(inlined) == 9


def _wrapped_in_a_function(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its whole graph moved into one model-local function (the initializers as
    Constant nodes inside it), the main graph one call: what a packaging tool could write."""
    g = model.graph
    constants = [
        helper.make_node(
            "Constant",
            [],
            [t.name],
            value=numpy_helper.from_array(numpy_helper.to_array(t), t.name),
        )
        for t in g.initializer
    ]
    opsets = list(model.opset_import)
    function = helper.make_function(
        "wrap",
        "everything",
        [i.name for i in g.input],
        [o.name for o in g.output],
        constants + list(g.node),
        opsets,
    )
    call = helper.make_node(
        "everything", [i.name for i in g.input], [o.name for o in g.output], domain="wrap"
    )
    graph = helper.make_graph([call], g.name, list(g.input), list(g.output))
    wrapped = helper.make_model(
        graph, opset_imports=[*opsets, helper.make_opsetid("wrap", 1)], functions=[function]
    )
    wrapped.ir_version = max(model.ir_version, 8)
    return wrapped


@pytest.mark.realmodel
def test_a_real_detector_moved_into_a_function_keeps_its_count(real_model) -> None:
    original = onnx.load(str(real_model("common_det")))
    wrapped = _wrapped_in_a_function(original)
    onnx.checker.check_model(wrapped)
    assert len(wrapped.graph.node) == 1
    assert bench_optimize.non_constant_nodes(original) == 279
    assert bench_optimize.non_constant_nodes(wrapped) == 279
