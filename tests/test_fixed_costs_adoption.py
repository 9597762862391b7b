"""Constant nodes made initializers while indexing (`Graph(adopt_constants=True)`) are taken
over, not copied: each tensor gets its place in the initializer list at once and is copied there
at `commit`, unless its data was overwritten first (`Graph.write_raw_data`, a folded weight: the
old bytes are never copied) or it was removed. The model that comes out is the one the
copying adoption (`constants-to-initializers` run as a pass) gives, byte for byte."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir import Graph
from graphopt.ir.graph import content_key
from graphopt.passes.base import PassContext
from graphopt.passes.constants import ConstantsToInitializers
from graphopt.passes.cse import EliminateCommonSubexpressions
from graphopt.patterns import RuleRunner, rule_set, select
from tests.conftest import assert_same_outputs
from tests.fusion_models import feeds

RNG = np.random.default_rng(3)


def _constant(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value))


def conv_bn_model() -> onnx.ModelProto:
    """Two Conv + BatchNormalization pairs whose every parameter is a (nameless) Constant node,
    as paddle2onnx writes them; the second pair's mean and variance equal the first's (CSE
    merges them), plus a Constant read by an Add that nothing folds."""
    w = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
    params = {
        "W1": w,
        "W2": RNG.normal(size=(4, 4, 3, 3)).astype(np.float32),
        "g1": RNG.uniform(0.5, 2, 4).astype(np.float32),
        "b1": RNG.normal(size=4).astype(np.float32),
        "m1": RNG.normal(size=4).astype(np.float32),
        "v1": RNG.uniform(0.5, 2, 4).astype(np.float32),
        "g2": RNG.uniform(0.5, 2, 4).astype(np.float32),
        "b2": RNG.normal(size=4).astype(np.float32),
        "k": RNG.normal(size=(1, 4, 1, 1)).astype(np.float32),
    }
    params["m2"], params["v2"] = params["m1"].copy(), params["v1"].copy()
    nodes = [_constant(name, value) for name, value in params.items()]
    nodes += [
        helper.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g1", "b1", "m1", "v1"], ["y1"]),
        helper.make_node("Conv", ["y1", "W2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "g2", "b2", "m2", "v2"], ["y2"]),
        helper.make_node("Add", ["y2", "k"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 6, 6])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _fold(graph: Graph) -> None:
    """CSE, then the BatchNormalization folds (what the default pipeline runs on these)."""
    EliminateCommonSubexpressions().run(graph, PassContext())
    runner = RuleRunner(graph)
    assert runner.run(select(rule_set(), ["batchnorm"])).applied == {"fold-batchnorm-conv": 2}


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.ModelProto.FromString(model.SerializeToString())


def test_taken_over_tensors_come_out_as_the_copying_pass_gives_them():
    model = conv_bn_model()
    taken = Graph(_copy(model), adopt_constants=True)
    copied = Graph(_copy(model))
    ConstantsToInitializers().run(copied, PassContext())  # copies every tensor (adopt_tensors)
    for graph in (taken, copied):
        _fold(graph)
    out = taken.commit(reindex=False)
    assert out.SerializeToString() == copied.commit(reindex=False).SerializeToString()
    # the folded biases were written over spare [4] parameters; the merged twins m2, v2 and
    # the other parameters are gone
    assert [t.name for t in out.graph.initializer] == ["W1", "W2", "g1", "v1", "k"]
    assert_same_outputs(model, out, feeds(model))


def test_a_taken_over_tensor_is_the_constant_nodes_own_until_the_commit():
    model = conv_bn_model()
    value = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant"}
    graph = Graph(model, adopt_constants=True)
    assert graph.initializers["k"] is value["k"]  # served in place: not copied
    assert len(model.graph.initializer) == 0  # no entry until the commit copies it in
    graph.commit()  # a commit that keeps the graph in use (a verify or dump instrument)
    assert [t.name for t in model.graph.initializer] == list(value)
    for t in model.graph.initializer:
        assert graph.initializers[t.name] is t  # the list's own tensors from now on
        assert t.raw_data == value[t.name].raw_data


def test_an_overwritten_weight_is_never_copied_with_its_old_bytes():
    graph = Graph(conv_bn_model(), adopt_constants=True)
    source = graph.initializers["W1"]
    new = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32).tobytes()
    graph.write_raw_data("W1", new)
    place = graph.initializers["W1"]
    assert place is not source and not source.HasField("raw_data")  # the old bytes stay put
    assert place.raw_data == new and place.name == "W1" and list(place.dims) == [4, 3, 3, 3]
    assert graph.content_keys["W1"] == (place, content_key(new))
    graph.commit(reindex=False)
    first = graph.proto.initializer[0]
    assert first.name == "W1" and first.raw_data == new  # in its place, not moved to the end


def test_a_removed_tensor_leaves_no_place_behind():
    graph = Graph(conv_bn_model(), adopt_constants=True)
    graph.replace_all_uses("k", "b1")  # shapes aside: only the list is looked at
    graph.remove_initializer("k")
    out = graph.commit(reindex=False)
    names = [t.name for t in out.graph.initializer]
    assert "k" not in names and len(names) == len(set(names)) == 10
    assert all(t.HasField("raw_data") for t in out.graph.initializer)


def test_write_raw_data_clears_typed_fields_of_a_tensor_in_the_list():
    graph = Graph(conv_bn_model())
    ConstantsToInitializers().run(graph, PassContext())
    tensor = graph.initializers["b1"]
    tensor.ClearField("raw_data")
    tensor.float_data.extend([1.0, 2.0, 3.0, 4.0])
    data = np.arange(4, dtype="<f4").tobytes()
    graph.write_raw_data("b1", data)
    assert graph.initializers["b1"] is tensor  # written in place
    assert len(tensor.float_data) == 0 and tensor.raw_data == data


def test_taken_over_tensors_land_in_node_order_before_those_added_later():
    """An overwritten weight's entry is appended when written, after initializers a pass added
    before: the commit moves it to its place among the taken-over tensors (node order), and a
    snapshot shows the list the commit writes."""
    model = conv_bn_model()
    graph = Graph(_copy(model), adopt_constants=True)
    graph.add_initializer("extra", np.ones(2, np.float32), exact_name=True)
    new = np.arange(4 * 4 * 9, dtype="<f4").tobytes()
    graph.write_raw_data("W2", new)
    graph.remove_initializer("m2")
    graph.remove_initializer("k")  # removed, then added again under its name
    graph.add_initializer("k", np.zeros((1, 4, 1, 1), np.float32), exact_name=True)
    expected = ["W1", "W2", "g1", "b1", "m1", "v1", "g2", "b2", "v2", "extra", "k"]
    shown = graph.snapshot()
    assert [t.name for t in shown.graph.initializer] == expected
    out = graph.commit(reindex=False)
    assert [t.name for t in out.graph.initializer] == expected
    assert out.graph.initializer[1].raw_data == new
    assert not np.any(numpy_helper.to_array(out.graph.initializer[-1]))  # the new k
    assert shown.graph.SerializeToString() == out.graph.SerializeToString()


def test_a_commit_keeps_the_lists_own_initializers_first():
    """A model with initializers of its own and Constant nodes: the taken-over tensors follow
    the list's own entries, whatever was appended since."""
    model = conv_bn_model()
    model.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "own"))
    graph = Graph(_copy(model), adopt_constants=True)
    graph.add_initializer("later", np.ones(2, np.float32), exact_name=True)
    graph.write_raw_data("b1", np.zeros(4, "<f4").tobytes())
    names = [t.name for t in graph.commit(reindex=False).graph.initializer]
    assert names[0] == "own" and names[-1] == "later" and names[4] == "b1"
    assert names[1:-1] == [n.output[0] for n in model.graph.node if n.op_type == "Constant"]
