"""The mutable graph index: use-lists, mutation API, topological write-back."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import onnx.reference
import pytest

from graphopt.errors import LoadError
from graphopt.ir import Graph

from .conftest import assert_same_outputs


def _model(text: str) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model)
    return model


CHAIN = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3] x) => (float[2,3] y) {
    a = Relu(x)
    b = Neg(a)
    c = Add(a, b)
    y = Abs(c)
}
"""


def test_index_producers_and_consumers():
    g = Graph(_model(CHAIN))
    assert len(g) == 4
    relu = g.producer_node("a")
    assert relu is not None and relu.op_type == "Relu"
    assert sorted(n.op_type for n in g.consumer_nodes("a")) == ["Add", "Neg"]
    assert g.use_count("y") == 1  # graph output only
    assert g.use_count("a") == 2


def test_unnamed_nodes_get_deterministic_unique_names():
    names1 = list(Graph(_model(CHAIN)).nodes)
    names2 = list(Graph(_model(CHAIN)).nodes)
    assert names1 == names2
    assert len(set(names1)) == 4 and all(names1)


def test_duplicate_node_names_are_made_unique():
    model = _model(CHAIN)
    for n in model.graph.node:
        n.name = "same"
    g = Graph(model)
    assert len(set(g.nodes)) == 4


def test_replace_all_uses_and_remove_keep_use_lists_right():
    model = _model(CHAIN)
    g = Graph(model)
    neg = g.producer_node("b")
    assert neg is not None
    g.replace_all_uses("b", "a")
    g.remove_node(neg)
    assert "b" not in g.consumers
    add = g.producer_node("c")
    assert add is not None and list(add.input) == ["a", "a"]
    assert set(g.consumers["a"]) == {add.name}
    out = g.commit()
    onnx.checker.check_model(out, full_check=True)
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    from graphopt.backends.onnxruntime import run

    np.testing.assert_allclose(run(out, {"x": x})["y"], 2 * np.maximum(x, 0))


def test_replace_graph_output_keeps_its_name_by_renaming_producer():
    model = _model(CHAIN)
    g = Graph(model)
    abs_node = g.producer_node("y")
    assert abs_node is not None
    # Drop the final Abs: y must now be produced by Add, still named "y".
    g.replace_all_uses("y", "c")
    g.remove_node(abs_node)
    out = g.commit()
    assert [o.name for o in out.graph.output] == ["y"]
    assert out.graph.node[-1].op_type == "Add" and list(out.graph.node[-1].output) == ["y"]
    onnx.checker.check_model(out, full_check=True)


def test_replace_graph_output_with_graph_input_inserts_identity():
    model = _model(CHAIN)
    g = Graph(model)
    g.replace_all_uses("y", "x")
    for name in list(g.nodes):
        if g.nodes[name].op_type != "Identity":
            g.remove_node(name)
    out = g.commit()
    assert [n.op_type for n in out.graph.node] == ["Identity"]
    assert [o.name for o in out.graph.output] == ["y"]
    onnx.checker.check_model(out, full_check=True)


def test_new_nodes_are_written_in_topological_order():
    model = _model(CHAIN)
    g = Graph(model)
    relu = g.producer_node("a")
    assert relu is not None
    # Insert Sigmoid between x and Relu; it is appended last but must be written first.
    sig = g.make_node("Sigmoid", ["x"])
    g.set_input(relu, 0, sig.output[0])
    out = g.commit()
    ops = [n.op_type for n in out.graph.node]
    assert ops.index("Sigmoid") < ops.index("Relu")
    onnx.checker.check_model(out, full_check=True)
    assert set(Graph(out).consumers["x"]) == {
        n.name for n in out.graph.node if n.op_type == "Sigmoid"
    }


def test_set_input_keeps_consumers_of_a_tensor_read_twice():
    model = _model(CHAIN)
    g = Graph(model)
    g.replace_all_uses("b", "a")  # Add(a, a)
    add = g.producer_node("c")
    assert add is not None
    g.set_input(add, 0, "x")  # Add(x, a): still a reader of a
    assert add.name in g.consumers["a"] and add.name in g.consumers["x"]
    g.set_input(add, 1, "x")  # Add(x, x): no longer reads a
    assert add.name not in g.consumers.get("a", {})


def test_initializers_add_remove_and_constant_values():
    model = _model(CHAIN)
    g = Graph(model)
    name = g.add_initializer("w", np.ones((2, 3), np.float32))
    assert g.is_constant(name)
    np.testing.assert_array_equal(g.constant(name), np.ones((2, 3), np.float32))
    add = g.producer_node("c")
    assert add is not None
    g.set_input(add, 1, name)
    out = g.commit()
    x = np.ones((2, 3), np.float32)
    from graphopt.backends.onnxruntime import run

    np.testing.assert_allclose(run(out, {"x": x})["y"], np.full((2, 3), 2.0, np.float32))
    g2 = Graph(out)
    add2 = g2.producer_node("c")
    assert add2 is not None
    g2.set_input(add2, 1, "a")
    g2.remove_initializer(name)
    out2 = g2.commit()
    assert not out2.graph.initializer


def test_initializer_that_is_a_graph_input_is_not_a_constant():
    model = _model(CHAIN)
    g = Graph(model)
    g.add_initializer("x", np.zeros((2, 3), np.float32), exact_name=True)
    assert g.constant("x") is None and not g.is_constant("x")


def test_graph_input_membership_follows_edits_of_the_input_list():
    model = _model(CHAIN)
    g = Graph(model)
    g.add_initializer("w", np.zeros((2, 3), np.float32), exact_name=True)
    assert g.is_graph_input("x") and not g.is_graph_input("w") and g.is_constant("w")
    g.graph_inputs.append("w")  # an IR < 4 style default, listed directly
    assert g.is_graph_input("w") and not g.is_constant("w") and g.constant("w") is None
    g.remove_graph_input("x")
    assert not g.is_graph_input("x") and g.is_graph_input("w")


def test_constant_node_forms():
    model = _model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
            c = Constant <value_floats = [1.0, 2.0]> ()
            y = Add(x, c)
        }
        """
    )
    g = Graph(model)
    np.testing.assert_array_equal(g.constant("c"), np.array([1, 2], np.float32))
    assert g.constant("x") is None


def test_cycle_is_reported():
    model = _model(CHAIN)
    g = Graph(model)
    relu = g.producer_node("a")
    assert relu is not None
    g.set_input(relu, 0, "y")
    with pytest.raises(LoadError, match="cycle"):
        g.commit()


def test_subgraph_outer_references_are_uses():
    model = _model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (bool cond, float[2] x) => (float[2] y) {
            t = Relu(x)
            y = If(cond) <
                then_branch = then_g () => (float[2] o) { o = Neg(t) },
                else_branch = else_g () => (float[2] o2) { o2 = Abs(t) }
            >
        }
        """
    )
    g = Graph(model)
    if_node = g.producer_node("y")
    assert if_node is not None and if_node.name in g.consumers["t"]
    # Replacing t by x must rename inside both branches.
    relu = g.producer_node("t")
    assert relu is not None
    g.replace_all_uses("t", "x")
    g.remove_node(relu)
    out = g.commit()
    onnx.checker.check_model(out, full_check=True)
    feeds = {"cond": np.array(True), "x": np.array([1.0, -2.0], np.float32)}
    from graphopt.backends.onnxruntime import run

    np.testing.assert_allclose(run(out, feeds)["y"], [-1.0, 2.0])
    assert_same_outputs(out, out, feeds)


def test_commit_twice_is_stable():
    model = _model(CHAIN)
    g = Graph(model)
    first = g.commit().SerializeToString()
    second = g.commit().SerializeToString()
    assert first == second


def test_commit_removes_adds_and_reorders_without_losing_kept_nodes():
    model = _model(CHAIN)
    g = Graph(model)
    neg = g.producer_node("b")
    abs_ = g.producer_node("y")
    assert neg is not None and abs_ is not None
    # Replace Neg by a new Sigmoid inserted before Relu's reader, and drop Neg.
    sig = g.make_node("Sigmoid", ["a"], ["s"])
    add = g.producer_node("c")
    assert add is not None
    g.set_input(add, 1, "s")
    g.remove_node(neg)
    out = g.commit()
    assert [n.op_type for n in out.graph.node] == ["Relu", "Sigmoid", "Add", "Abs"]
    # Kept nodes are the protobuf's own messages (not copies), the added one was copied in.
    assert any(n is abs_ for n in out.graph.node)
    assert not any(n is sig for n in out.graph.node)
    assert g.producer_node("s") is out.graph.node[1]
    assert set(g.consumers["s"]) == {out.graph.node[2].name}
    assert "b" not in g.producer
    onnx.checker.check_model(out, full_check=True)
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3) - 2}
    y = onnx.reference.ReferenceEvaluator(out).run(None, feeds)[0]
    a = np.maximum(feeds["x"], 0)
    np.testing.assert_allclose(y, np.abs(a + 1 / (1 + np.exp(-a))), rtol=1e-6)


def test_commit_without_reindex_writes_the_same_model():
    def edited() -> Graph:
        g = Graph(_model(CHAIN))
        relu = g.producer_node("a")
        assert relu is not None
        sig = g.make_node("Sigmoid", ["x"])
        g.set_input(relu, 0, sig.output[0])
        return g

    assert (
        edited().commit(reindex=False).SerializeToString() == edited().commit().SerializeToString()
    )


def test_custom_domain_node_with_a_graph_attribute_reads_outer_tensors():
    body = onnx.helper.make_graph(
        [onnx.helper.make_node("Neg", ["t"], ["o"], name="neg")],
        "body",
        [],
        [onnx.helper.make_tensor_value_info("o", onnx.TensorProto.FLOAT, [2])],
    )
    nodes = [
        onnx.helper.make_node("Relu", ["x"], ["t"], name="relu"),
        onnx.helper.make_node("Wrap", ["x"], ["y"], name="wrap", domain="custom", body=body),
    ]
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", 13), onnx.helper.make_opsetid("custom", 1)],
    )
    g = Graph(model)
    assert set(g.consumers["t"]) == {"wrap"}
    assert g.has_subgraphs(g.nodes["wrap"]) and not g.has_subgraphs(g.nodes["relu"])
    assert [n.name for n in g.toposort()] == ["relu", "wrap"]


@pytest.mark.parametrize(
    "value",
    [
        np.array(3.5, np.float32),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.array([True, False]),
        np.zeros((0, 3), np.float16),
        np.array([1, 2], np.uint16),
        np.array([1.5, -2.0], np.float64),
    ],
)
def test_tensor_value_reads_raw_data_like_to_array(value):
    from onnx import numpy_helper

    from graphopt.ir.graph import tensor_value

    raw = numpy_helper.from_array(value, "t")
    typed = onnx.helper.make_tensor("t", raw.data_type, value.shape, value.reshape(-1).tolist())
    for t in (raw, typed):
        want, got = numpy_helper.to_array(t), tensor_value(t)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert got.flags.writeable == want.flags.writeable
