"""Adversarial review H149 of eliminate-noops, CSE, dead code and constants-to-initializers:
each defect found, as a model the original passes got wrong."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import helper

import graphopt
from graphopt.pipeline import make_pipeline
from tests.conftest import assert_same_outputs

# y = Wrap(x) - Wrap(x), Wrap a local function in com.microsoft (a domain CSE merges)
_WRAPPED = """<ir_version: 8, opset_import: ["" : 15, "com.microsoft": 1, "{inner_domain}": 1]>
g (float[2,3] x) => (float[2,3] y) {{
  a = com.microsoft.Wrap(x)
  b = com.microsoft.Wrap(x)
  y = Sub(a, b)
}}
<domain: "com.microsoft", opset_import: ["" : 15, "{inner_domain}": 1]>
Wrap (x) => (y) {{ y = {inner_domain}.{inner_op}(x) }}
<domain: "local", opset_import: ["" : 15]>
Inner (x) => (y) {{ y = Relu(x) }}
"""


def _cse_ops(model: onnx.ModelProto) -> list[str]:
    out = graphopt.optimize(model, make_pipeline("t", ["eliminate-common-subexpressions"]))
    return [n.op_type for n in out.graph.node]


def test_cse_keeps_calls_of_functions_holding_an_unknown_custom_op():
    """A function wrapping an op of an unknown domain (my.rng.Noise: maybe random) is as
    unknown as the op, which CSE never merges itself: two calls were merged into one."""
    text = _WRAPPED.format(inner_domain="my.rng", inner_op="Noise")
    model = onnx.parser.parse_model(text)
    direct = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 15, "my.rng": 1]>\n'
        "g (float[2,3] x) => (float[2,3] y) "
        "{ a = my.rng.Noise(x) b = my.rng.Noise(x) y = Sub(a, b) }"
    )
    assert _cse_ops(direct) == ["Noise", "Noise", "Sub"]
    assert _cse_ops(model) == ["Wrap", "Wrap", "Sub"]


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
def test_cse_still_merges_calls_of_deterministic_functions(pipeline):
    """Wrap calling another local function (local.Inner = Relu, a domain CSE does not merge
    itself) is deterministic: its two calls still merge, and the result is the original's."""
    model = onnx.parser.parse_model(_WRAPPED.format(inner_domain="local", inner_op="Inner"))
    out = graphopt.optimize(model, pipeline)
    assert [n.op_type for n in out.graph.node] == ["Wrap", "Sub"]
    feeds = {"x": np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)}
    assert_same_outputs(model, out, feeds)


def _overloads_model() -> onnx.ModelProto:
    """y = F@a(x) - F@b(x): two overloads (IR 10) of one com.microsoft local function F,
    a = Relu and b = Neg; the calls differ only in their `overload` field."""
    opsets = [helper.make_opsetid("", 18)]
    functions = [
        helper.make_function(
            "com.microsoft", "F", ["x"], ["y"], [helper.make_node(op, ["x"], ["y"])], opsets,
            overload=overload,
        )
        for overload, op in (("a", "Relu"), ("b", "Neg"))
    ]  # fmt: skip
    calls = [helper.make_node("F", ["x"], [out], domain="com.microsoft") for out in "pq"]
    calls[0].overload, calls[1].overload = "a", "b"
    graph = helper.make_graph(
        [*calls, helper.make_node("Sub", ["p", "q"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[*opsets, helper.make_opsetid("com.microsoft", 1)],
        functions=functions,
        ir_version=10,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("pipeline", ["default", "tensorrt", "simplify"])
def test_cse_keeps_calls_of_two_overloads_apart(pipeline):
    """Calls of two overloads of one function are calls of two functions: CSE merged them
    (y = x+ - (-x) = x + |x| became 0 in every pipeline)."""
    model = _overloads_model()
    out = graphopt.optimize(model, pipeline)
    assert sorted(n.overload for n in out.graph.node if n.op_type == "F") == ["a", "b"]
    feeds = {"x": np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)}
    assert_same_outputs(model, out, feeds)
