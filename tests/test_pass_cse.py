"""eliminate-common-subexpressions: identical nodes and constants merged, the unsafe ones kept."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
from onnx import TensorProto, helper, numpy_helper

from tests import models_util
from tests.conftest import assert_same_outputs
from tests.models_util import ops, run

F32 = np.float32
HEADER = '<ir_version: 8, opset_import: ["" : 13]>\n'


def parse(text: str) -> onnx.ModelProto:
    return models_util.parse(HEADER + text)


FEEDS = {"x": np.arange(6, dtype=F32).reshape(2, 3) - 2.5}


def test_identical_nodes_merge_and_the_merge_cascades():
    model = parse(
        """
        g (float[2, 3] x) => (float[2, 3] y) {
          a1 = Relu (x)
          a2 = Relu (x)
          b1 = Sigmoid (a1)
          b2 = Sigmoid (a2)
          y = Add (b1, b2)
        }
        """
    )
    out = run(model, "eliminate-common-subexpressions", "eliminate-dead-code")
    assert ops(out) == ["Relu", "Sigmoid", "Add"]
    add = out.graph.node[-1]
    assert add.input[0] == add.input[1] == "b1"
    assert_same_outputs(model, out, FEEDS)


def test_different_attributes_or_input_order_are_not_merged():
    model = parse(
        """
        g (float[2, 3] x) => (float[2, 3] y) {
          a = LeakyRelu <alpha = 0.1> (x)
          b = LeakyRelu <alpha = 0.2> (x)
          c = LeakyRelu <alpha = 0.1> (x)
          s1 = Sub (a, b)
          s2 = Sub (b, a)
          t = Add (s1, s2)
          y = Add (t, c)
        }
        """
    )
    out = run(model, "eliminate-common-subexpressions", "eliminate-dead-code")
    assert ops(out).count("LeakyRelu") == 2  # c merged into a; b differs in alpha
    assert ops(out).count("Sub") == 2
    assert_same_outputs(model, out, FEEDS)


def test_random_ops_are_never_merged():
    model = parse(
        """
        g (float[2, 3] x) => (float[2, 3] y) {
          r1 = RandomUniformLike (x)
          r2 = RandomUniformLike (x)
          y = Sub (r1, r2)
        }
        """
    )
    out = run(model, "eliminate-common-subexpressions")
    assert ops(out) == ["RandomUniformLike", "RandomUniformLike", "Sub"]


def test_onnxruntime_contrib_dropouts_are_never_merged():
    """com.microsoft BiasDropout draws a mask in training mode like Dropout: two with the same
    inputs are two draws (they were merged; onnxruntime's CPU build has no kernel to show it)."""
    from graphopt.ir import Graph
    from graphopt.passes.base import PassContext
    from graphopt.passes.cse import EliminateCommonSubexpressions

    graph = helper.make_graph(
        [
            helper.make_node("BiasDropout", ["x", "b"], ["d1"], domain="com.microsoft"),
            helper.make_node("BiasDropout", ["x", "b"], ["d2"], domain="com.microsoft"),
            helper.make_node("Sub", ["d1", "d2"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.ones(3, np.float32), "b")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    g = Graph(model)
    EliminateCommonSubexpressions().run(g, PassContext())
    assert [n.op_type for n in g.commit().graph.node] == ["BiasDropout", "BiasDropout", "Sub"]


def test_nodes_with_subgraphs_are_never_merged():
    branch = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"])],
        "b",
        [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 3])],
    )
    nodes = [
        helper.make_node("If", ["c"], ["i1"], then_branch=branch, else_branch=branch),
        helper.make_node("If", ["c"], ["i2"], then_branch=branch, else_branch=branch),
        helper.make_node("Add", ["i1", "i2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out = run(model, "eliminate-common-subexpressions")
    assert ops(out) == ["If", "If", "Add"]


def test_identical_initializers_are_deduplicated_but_graph_input_defaults_are_not():
    same = np.array([1.0, 2.0, 3.0], F32)
    inits = [
        numpy_helper.from_array(same, "w1"),
        numpy_helper.from_array(same.copy(), "w2"),
        numpy_helper.from_array(np.array([1.0, 2.0, 4.0], F32), "w3"),  # differs in the last byte
        numpy_helper.from_array(same.astype(np.float64).astype(F32), "w_default"),
    ]
    nodes = [
        helper.make_node("Add", ["x", "w1"], ["a"]),
        helper.make_node("Add", ["a", "w2"], ["b"]),
        helper.make_node("Add", ["b", "w3"], ["c"]),
        helper.make_node("Add", ["c", "w_default"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("w_default", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out = run(model, "eliminate-common-subexpressions", "eliminate-dead-code")
    names = sorted(t.name for t in out.graph.initializer)
    assert names == ["w1", "w3", "w_default"]
    assert [n.input[1] for n in out.graph.node] == ["w1", "w1", "w3", "w_default"]
    assert_same_outputs(model, out, FEEDS)
    override = {**FEEDS, "w_default": np.array([9.0, 9.0, 9.0], F32)}
    assert_same_outputs(model, out, override)


def test_large_tensors_with_equal_prefix_and_suffix_are_compared_fully():
    a = np.zeros(10_000, F32)
    b = a.copy()
    b[5000] = 1.0
    inits = [numpy_helper.from_array(a, "wa"), numpy_helper.from_array(b, "wb")]
    nodes = [
        helper.make_node("Add", ["x", "wa"], ["s"]),
        helper.make_node("Add", ["s", "wb"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [10_000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [10_000])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out = run(model, "eliminate-common-subexpressions")
    assert sorted(t.name for t in out.graph.initializer) == ["wa", "wb"]


def test_duplicates_feeding_graph_outputs_keep_both_output_names():
    model = parse(
        """
        g (float[2, 3] x) => (float[2, 3] y1, float[2, 3] y2) {
          y1 = Relu (x)
          y2 = Relu (x)
        }
        """
    )
    out = run(model, "eliminate-common-subexpressions")
    assert ops(out) == ["Relu", "Relu"]  # merging would need an Identity: nothing gained
    assert [o.name for o in out.graph.output] == ["y1", "y2"]
    assert_same_outputs(model, out, FEEDS)


def test_duplicate_feeding_a_graph_output_is_merged_by_renaming():
    model = parse(
        """
        g (float[2, 3] x) => (float[2, 3] y, float[2, 3] z) {
          a = Relu (x)
          y = Relu (x)
          z = Sigmoid (a)
        }
        """
    )
    out = run(model, "eliminate-common-subexpressions")
    assert ops(out) == ["Relu", "Sigmoid"]
    assert out.graph.node[0].output[0] == "y"
    assert out.graph.node[1].input[0] == "y"
    assert_same_outputs(model, out, FEEDS)


def test_node_with_an_omitted_optional_output_does_not_absorb_one_that_has_it():
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        helper.make_node("MaxPool", ["x"], ["a", ""], name="first", **pool),
        helper.make_node("MaxPool", ["x"], ["b", "i"], name="second", **pool),
        helper.make_node("Cast", ["i"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Add", ["s", "c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out = run(model, "eliminate-common-subexpressions")
    assert ops(out) == ["MaxPool", "MaxPool", "Cast", "Add", "Add"]
    x = np.arange(16, dtype=F32).reshape(1, 1, 4, 4)
    assert_same_outputs(model, out, {"x": x})
