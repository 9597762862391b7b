"""Adversarial review 3 of how the passes treat If/Loop/Scan bodies and model-local functions:
the defects found, each as a model the original pipelines got wrong."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run as ort_run

PIPELINES = ("default", "tensorrt", "ort-fusions", "ort-cpu", "ort-cpu-native", "simplify")
F, BOOL = onnx.TensorProto.FLOAT, onnx.TensorProto.BOOL


def _same(original: onnx.ModelProto, rewritten: onnx.ModelProto, feeds: dict) -> None:
    want, got = ort_run(original, feeds), ort_run(rewritten, feeds)
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)


def _nested_sparse_shadow() -> onnx.ModelProto:
    """t = Identity(x); an If branch reads t and holds an inner If whose branch has a sparse
    initializer of its own named t (it shadows the outer t there: [0, 5, 0])."""
    values = numpy_helper.from_array(np.array([5.0], np.float32), "t")
    indices = numpy_helper.from_array(np.array([1], np.int64), "t_indices")
    sparse = helper.make_sparse_tensor(values, indices, [3])
    inner_then = helper.make_graph(
        [helper.make_node("Add", ["t", "t"], ["p"])],
        "inner_then",
        [],
        [helper.make_tensor_value_info("p", F, [3])],
        sparse_initializer=[sparse],
    )
    inner_else = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["p2"])],
        "inner_else",
        [],
        [helper.make_tensor_value_info("p2", F, [3])],
    )
    outer_then = helper.make_graph(
        [
            helper.make_node("If", ["c"], ["q"], then_branch=inner_then, else_branch=inner_else),
            helper.make_node("Add", ["q", "t"], ["o"]),
        ],
        "outer_then",
        [],
        [helper.make_tensor_value_info("o", F, [3])],
    )
    outer_else = helper.make_graph(
        [helper.make_node("Mul", ["t", "t"], ["o2"])],
        "outer_else",
        [],
        [helper.make_tensor_value_info("o2", F, [3])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["t"]),
            helper.make_node("If", ["c"], ["y"], then_branch=outer_then, else_branch=outer_else),
        ],
        "g",
        [helper.make_tensor_value_info("x", F, [3]), helper.make_tensor_value_info("c", BOOL, [])],
        [helper.make_tensor_value_info("y", F, [3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_body_sparse_initializer_shadowing_a_renamed_tensor_keeps_its_value(pipeline):
    """Bypassing t = Identity(x) renames the reads of t in the bodies that read it; a nested
    body's own sparse initializer t was renamed too (ir.graph.scope_names left sparse
    initializers out, so noop.shadowed did not see it): y came out [3, 6, 9] for [1, 12, 3]."""
    model = _nested_sparse_shadow()
    out = graphopt.optimize(model, pipeline)
    _same(model, out, {"x": np.array([1.0, 2.0, 3.0], np.float32), "c": np.array(True)})


def _two_noise_calls() -> onnx.ModelProto:
    """y = Noise(x) - Noise(x), Noise a model-local function in a domain CSE merges
    (com.microsoft) that adds RandomUniformLike(x) to x: two draws."""
    noise = helper.make_function(
        "com.microsoft",
        "Noise",
        ["x"],
        ["y"],
        [
            helper.make_node("RandomUniformLike", ["x"], ["r"]),
            helper.make_node("Add", ["x", "r"], ["y"]),
        ],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Noise", ["x"], ["a"], domain="com.microsoft"),
            helper.make_node("Noise", ["x"], ["b"], domain="com.microsoft"),
            helper.make_node("Sub", ["a", "b"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", F, [64])],
        [helper.make_tensor_value_info("y", F, [64])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, functions=[noise], ir_version=10)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_two_calls_of_a_random_local_function_are_two_draws(pipeline):
    """CSE merged the two calls (same domain, op and inputs), so y = a - a was 0 everywhere
    where the original subtracts two independent draws."""
    model = _two_noise_calls()
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    assert [n.op_type for n in out.graph.node].count("Noise") == 2
    y = ort_run(out, {"x": np.zeros(64, np.float32)})["y"]
    assert np.count_nonzero(y) > 0


def test_calls_of_a_deterministic_local_function_still_merge():
    model = _two_noise_calls()
    model.functions[0].node[0].op_type = "Relu"  # Relu(x): no draw
    out = graphopt.optimize(model, "simplify")
    assert [n.op_type for n in out.graph.node].count("Noise") == 1
    _same(model, out, {"x": np.linspace(-1, 1, 64, dtype=np.float32)})


def _matmul_add_of_a_function_call() -> onnx.ModelProto:
    """y = MatMul(c, W) + b where c = com.microsoft.Concat(x), a model-local function (no
    onnxruntime contrib op has that name, so the function runs) that unsqueezes [2, 3] to
    [1, 2, 3]."""
    concat = helper.make_function(
        "com.microsoft",
        "Concat",
        ["x"],
        ["y"],
        [
            helper.make_node(
                "Constant",
                [],
                ["axes"],
                value=numpy_helper.from_array(np.array([0], np.int64), "axes"),
            ),
            helper.make_node("Unsqueeze", ["x", "axes"], ["y"]),
        ],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    rs = np.random.RandomState(0)
    graph = helper.make_graph(
        [
            helper.make_node("Concat", ["x"], ["c"], domain="com.microsoft"),
            helper.make_node("MatMul", ["c", "W"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("y", F, [1, 2, 4])],
        initializer=[
            numpy_helper.from_array(rs.randn(3, 4).astype(np.float32), "W"),
            numpy_helper.from_array(rs.randn(4).astype(np.float32), "b"),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, functions=[concat], ir_version=10)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_local_function_named_like_an_op_has_no_rank_of_that_op(pipeline):
    """The rule engine ranked c through the com.microsoft node as a Concat (its first input's
    rank, 2), so MatMul + Add became a Gemm of a rank-3 tensor: onnx.checker and onnxruntime
    refused the result of every pipeline but simplify."""
    model = _matmul_add_of_a_function_call()
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    _same(model, out, {"x": np.random.RandomState(1).randn(2, 3).astype(np.float32)})


def test_a_pool_whose_ceil_mode_is_a_function_attribute_reference_is_unknown_not_a_crash():
    """A local function P<cm>(x) = MaxPool<ceil_mode=@cm>(x), called with cm=1 and its output's
    shape read: runtime_shapes.is_suspect read the referenced attribute's value and every
    pipeline raised PassError ('Cannot get value of reference attribute'). Such a node is a
    suspect (its caller decides), so the call's output dims are not folded."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
        g (float[N,1,5,5] x) => (int64[4] n) {
          y = local.P<cm = 1>(x)
          s = Shape(y)
          n = Identity(s)
        }
        <domain: "local", opset_import: ["" : 17]>
        P <cm> (x) => (y) {
          y = MaxPool<kernel_shape = [2, 2], strides = [2, 2], pads = [1, 1, 1, 1], ceil_mode: int = @cm>(x)
        }"""
    )
    x = np.zeros((2, 1, 5, 5), np.float32)
    want = ort_run(model, {"x": x})["n"]
    for pipeline in ("default", "simplify", "tensorrt"):
        got = ort_run(graphopt.optimize(model, pipeline), {"x": x})["n"]
        np.testing.assert_array_equal(got, want)
