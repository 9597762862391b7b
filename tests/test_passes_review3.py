"""Review 3 of the clean-up passes (noop, layout, CSE, DCE, NCHWc): each test reproduces a wrong
result or an invalid model that the pass produced before its fix."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.pipeline import Pipeline, make_pipeline
from tests.conftest import assert_same_outputs


def _optimize(model: onnx.ModelProto, pipeline: str | Pipeline) -> onnx.ModelProto:
    result = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(result, full_check=True)
    return result


def _one_pass(name: str) -> Pipeline:
    return make_pipeline(name, [name])


def test_cse_keeps_unequal_string_initializers_apart() -> None:
    # numpy's tobytes() of a string tensor is its objects' addresses, which the next decoded
    # tensor reuses: CSE merged 'dog' into 'cat' (one-element tensors of the same dims)
    words = ["cat", "dog", "pig", "cow", "owl", "bat", "cat", "emu", "yak", "ant"]
    inits = [
        numpy_helper.from_array(np.array([w], dtype=object), f"c{i}") for i, w in enumerate(words)
    ]
    nodes = [helper.make_node("Concat", ["s", f"c{i}"], [f"y{i}"], axis=0) for i in range(10)]
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.STRING, [2]) for i in range(10)]
    s = helper.make_tensor_value_info("s", TensorProto.STRING, [1])
    graph = helper.make_graph(nodes, "g", [s], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"s": np.array(["q"], dtype=object)}
    expected = ort_run(model, feeds)
    for pipeline in ("simplify", _one_pass("eliminate-common-subexpressions")):
        result = _optimize(model, pipeline)
        got = ort_run(result, feeds)
        for name, value in expected.items():
            assert got[name].tolist() == value.tolist(), name
        assert len(result.graph.initializer) == 9  # the two 'cat' are merged


def test_nchwc_leaves_average_pool_with_ceil_mode_and_count_include_pad() -> None:
    # the nchwc AveragePool counts the last (ceil) window's cells past the padding otherwise
    # than onnxruntime's NCHW kernel: 26% of the outputs differed (up to 1/3 of the value)
    pool = helper.make_node(
        "AveragePool",
        ["x"],
        ["y"],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        ceil_mode=1,
        count_include_pad=1,
    )
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 12, 12])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 7, 7])
    model = helper.make_model(
        helper.make_graph([pool], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)]
    )
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 16, 12, 12)).astype(np.float32)}
    for pipeline in ("ort-cpu-native", "ort-cpu", _one_pass("ort-nchwc-layout")):
        assert_same_outputs(model, _optimize(model, pipeline), feeds)


def test_nchwc_conv_refuses_blocked_input_whose_padded_channels_overflow() -> None:
    # 20 channels in blocks of 8 or 16 leave padded channels, which hold relu(0) - 1 = -1 and
    # then -1·3e38 - 3e38 = -inf; the next Conv met them with its zero filters: -inf·0 = NaN
    # in every output (the original's values are finite)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 4, 4])
    inits = [
        numpy_helper.from_array(np.zeros((20, 16, 1, 1), np.float32), "w1"),
        numpy_helper.from_array(np.ones(20, np.float32), "b1"),
        numpy_helper.from_array(np.array(-1.0, np.float32), "minus_one"),
        numpy_helper.from_array(np.array(3e38, np.float32), "big"),
        numpy_helper.from_array(np.array(-3e38, np.float32), "minus_big"),
        numpy_helper.from_array(np.full((16, 20, 1, 1), 1e-3, np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Add", ["r", "minus_one"], ["d"]),  # 0 in the 20 channels
        helper.make_node("Mul", ["d", "big"], ["e"]),
        helper.make_node("Add", ["e", "minus_big"], ["f"]),  # -3e38, finite
        helper.make_node("Conv", ["f", "w2"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 16, 4, 4)).astype(np.float32)}
    assert np.isfinite(ort_run(model, feeds)["y"]).all()
    for pipeline in ("ort-cpu-native", "ort-cpu", _one_pass("ort-nchwc-layout")):
        assert_same_outputs(model, _optimize(model, pipeline), feeds, rtol=1e-3)


def _if_model(
    outer: list[onnx.NodeProto], then_nodes: list[onnx.NodeProto], local: str
) -> onnx.ModelProto:
    """y = If(c, then: then_nodes with a body initializer `local` = [10, 20], else: -r); the
    outer graph's nodes `outer` read x [2] and write r; initializers a = b = [1, 2]."""
    value = np.array([10.0, 20.0], np.float32)
    then = helper.make_graph(
        then_nodes,
        "then",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])],
        initializer=[numpy_helper.from_array(value, local)],
    )
    orelse = helper.make_graph(
        [helper.make_node("Neg", ["r"], ["o2"])],
        "else",
        [],
        [helper.make_tensor_value_info("o2", TensorProto.FLOAT, [2])],
    )
    nodes = [*outer, helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=orelse)]
    ab = [numpy_helper.from_array(np.array([1.0, 2.0], np.float32), n) for n in ("a", "b")]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("c", TensorProto.BOOL, []),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=ab)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_renames_stop_at_a_body_that_defines_the_name_itself() -> None:
    # onnx's checker accepts a body initializer named like an outer tensor (it shadows it);
    # renaming the outer reads into the body made the body read its own tensor, or the outer
    # one where it read its own: Identity(x) bypassed read the body's x = [10, 20] (y doubled),
    # CSE of the twins a and b made the body's a + b read the outer a
    noop = _if_model(
        [helper.make_node("Identity", ["x"], ["r"])],
        [helper.make_node("Add", ["r", "x"], ["o"])],
        local="x",
    )
    cse = _if_model(
        [helper.make_node("Add", ["x", "a"], ["r"])],
        [helper.make_node("Add", ["r", "b"], ["t"]), helper.make_node("Add", ["t", "a"], ["o"])],
        local="a",
    )
    feeds = {"x": np.array([0.5, 0.25], np.float32), "c": np.array(True)}
    for model in (noop, cse):
        onnx.checker.check_model(model, full_check=True)
        for pipeline in (
            "default",
            _one_pass("eliminate-noops"),
            _one_pass("eliminate-common-subexpressions"),
        ):
            assert_same_outputs(model, _optimize(model, pipeline), feeds)
