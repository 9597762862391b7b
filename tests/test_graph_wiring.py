"""The graph keeps what each node reads and writes (`_wiring`) next to the protobuf, so removing
and ordering nodes reads no protobuf fields: it must match the nodes after every mutation."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest

from graphopt.ir import Graph
from graphopt.passes.base import PassContext, PassResult

FLOAT = onnx.TensorProto.FLOAT


def assert_index_matches_nodes(graph: Graph) -> None:
    """Wiring, producers and consumers equal what the live nodes' own fields say."""
    producer: dict[str, str] = {}
    consumers: dict[str, set[str]] = {}
    for name, node in graph.nodes.items():
        assert graph._wiring[name] == (tuple(node.input), tuple(node.output)), name
        for out in node.output:
            if out:
                producer[out] = name
        for tensor in graph.node_inputs(node):
            consumers.setdefault(tensor, set()).add(name)
    assert set(graph._wiring) == set(graph.nodes)
    assert graph.producer == producer
    assert {t: set(users) for t, users in graph.consumers.items()} == consumers


def _chain_model() -> onnx.ModelProto:
    graph = oh.make_graph(
        [
            oh.make_node("Relu", ["x"], ["a"], name="r1"),
            oh.make_node("Relu", ["x"], ["b"], name="r2"),
            oh.make_node("Add", ["a", "b"], ["s"], name="add"),
            oh.make_node("Neg", ["s"], ["y"], name="neg"),
        ],
        "g",
        [oh.make_tensor_value_info("x", FLOAT, [2])],
        [oh.make_tensor_value_info("y", FLOAT, [2]), oh.make_tensor_value_info("a", FLOAT, [2])],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def test_wiring_follows_every_mutation():
    g = Graph(_chain_model())
    assert_index_matches_nodes(g)
    g.set_input(g.nodes["add"], 1, "a")  # Add(a, a)
    assert_index_matches_nodes(g)
    g.set_input(g.nodes["neg"], 3, "x")  # appends "" inputs before it
    assert g._wiring["neg"][0] == ("s", "", "", "x")
    assert_index_matches_nodes(g)
    g.remove_node("r2")
    assert_index_matches_nodes(g)
    c = g.add_initializer("c", np.ones(2, np.float32))
    mul = g.make_node("Mul", ["x", c])
    assert_index_matches_nodes(g)
    g.replace_all_uses("a", mul.output[0])  # "a" is a graph output: kept by renaming Mul's
    assert_index_matches_nodes(g)
    assert g.producer["a"] == mul.name and g._wiring[mul.name][1] == ("a",)
    g.replace_all_uses("y", "x")  # "y" is an output produced by "neg": detached, Identity added
    assert_index_matches_nodes(g)
    assert any(o.endswith("_detached") for o in g._wiring["neg"][1])
    g.commit()  # re-indexes from the protobuf
    assert_index_matches_nodes(g)
    assert [tuple(n.input) for n in g.model.graph.node][-1] == ("x",)  # the Identity


def test_toposort_uses_the_wiring():
    g = Graph(_chain_model())
    late = g.make_node("Relu", ["x"], name="late")
    g.set_input(g.nodes["r1"], 0, late.output[0])  # r1 now reads a node added after it
    assert [n.name for n in g.toposort()] == ["late", "r1", "r2", "add", "neg"]
    g.commit()
    assert [n.name for n in g.model.graph.node] == ["late", "r1", "r2", "add", "neg"]
    assert_index_matches_nodes(g)


class _CheckIndex:
    """An instrument asserting the index matches the nodes after every pass."""

    def __init__(self) -> None:
        self.passes = 0

    def before_pass(self, pass_, graph: Graph, ctx: PassContext) -> None:
        pass

    def after_pass(self, pass_, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        assert_index_matches_nodes(graph)
        self.passes += 1


@pytest.mark.realmodel
@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
@pytest.mark.parametrize("name", ["layout_cdla", "ppocr_det"])
def test_index_matches_nodes_after_every_pass_on_a_real_model(real_model, name, pipeline):
    from graphopt.api import make_context
    from graphopt.ir import load_model
    from graphopt.pipeline import PassManager, load_pipeline

    pipe = load_pipeline(pipeline)
    ctx = make_context(pipe)
    check = _CheckIndex()
    ctx.instruments.append(check)
    graph = Graph(load_model(real_model(name)))
    PassManager(pipe).run(graph, ctx)
    assert check.passes > 5


def test_toposort_is_remembered_until_the_wiring_changes():
    g = Graph(_chain_model())
    names = ["r1", "r2", "add", "neg"]
    first = g.toposort()
    assert [n.name for n in first] == names
    first.reverse()  # the caller's copy
    assert [n.name for n in g.toposort()] == names
    late = g.make_node("Relu", ["x"], name="late")
    assert [n.name for n in g.toposort()] == [*names, "late"]
    g.set_input(g.nodes["r2"], 0, late.output[0])
    assert [n.name for n in g.toposort()] == ["r1", "late", "r2", "add", "neg"]
    later = g.make_node("Neg", ["x"], name="later")
    assert [n.name for n in g.toposort()][-1] == "later"
    g.replace_all_uses("a", later.output[0])  # add reads Neg's output now ("a" stays an output)
    order = [n.name for n in g.toposort()]
    assert order.index("later") < order.index("add")
    g.remove_node("neg")
    assert "neg" not in [n.name for n in g.toposort()]
    g.commit()
    assert [n.name for n in g.toposort()] == [n.name for n in g.model.graph.node]
    assert_index_matches_nodes(g)


def test_inputs_of_and_outputs_of_read_the_index():
    g = Graph(_chain_model())
    assert g.inputs_of("add") == ("a", "b") and g.outputs_of("add") == ("s",)
    g.set_input(g.nodes["add"], 1, "x")
    assert g.inputs_of("add") == ("a", "x") == tuple(g.nodes["add"].input)
    g.replace_all_uses("s", "x")
    assert g.inputs_of("neg") == ("x",)
    with pytest.raises(KeyError):
        g.inputs_of("no such node")


@pytest.mark.parametrize("first_name", ["r1", ""])  # names as given, or one to make up
def test_fresh_names_avoid_every_tensor_name(first_name):
    model = _chain_model()
    model.graph.node[0].name = first_name
    model.graph.node[1].output[0] = "Relu_out"  # a tensor named like a fresh output would be
    model.graph.node[2].input[1] = "Relu_out"
    g = Graph(model)
    assert g.make_node("Relu", ["x"]).output[0] == "Relu_out_1"
    assert g.make_node("Relu", ["x"]).output[0] == "Relu_out_2"
