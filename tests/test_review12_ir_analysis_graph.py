"""graphopt.ir.graph's mutation API under ONNX scoping and at the graph's edges (review 12).

`replace_all_uses` renames reads inside If/Loop bodies: a body that defines the renamed name
itself keeps its own tensor (and so do its nested bodies), a nested body without one follows
the rename, and a body that defines the new name itself gives its own a fresh name first.

The meaning of a model whose body shadows an outer name is the lexical one (the body's own
tensor), which onnx's checker accepts for body inputs and initializers; onnxruntime does not
always resolve it so (it read the outer tensor for a branch's own initializer once a main-graph
node read that tensor too). Each case is therefore built twice, with the body's own tensor
under the outer name (the model rewritten) and under a name of its own (the reference, the
same computation without shadowing), and the rewritten model must compute what the reference
computes. After the rewrite no outer tensor of the shadowed name is left, so onnxruntime reads
the rewritten model one way only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper
import pytest

from graphopt.ir import Graph
from graphopt.ir.graph import outer_references
from tests.conftest import assert_same_outputs
from tests.test_graph_wiring import assert_index_matches_nodes

FLOAT, BOOL, INT64 = onnx.TensorProto.FLOAT, onnx.TensorProto.BOOL, onnx.TensorProto.INT64
SHAPE = [2, 3]
Build = Callable[[str], onnx.ModelProto]  # the model, given the name of the body's own tensor


def _vi(name: str, elem: int = FLOAT, shape: list[int] | None = SHAPE) -> onnx.ValueInfoProto:
    return oh.make_tensor_value_info(name, elem, shape)


def _branch(name: str, nodes: list[onnx.NodeProto], out: str, own: str = "") -> onnx.GraphProto:
    """An If branch; `own`: the name of an initializer it defines itself (0.25 everywhere)."""
    inits = [oh.make_tensor(own, FLOAT, SHAPE, [0.25] * 6)] if own else []
    return oh.make_graph(nodes, name, [], [_vi(out)], inits)


def _loop_body(name: str, nodes: list[onnx.NodeProto], out: str) -> onnx.GraphProto:
    """A Loop body (iteration i, condition c_in) → (c_out, `out` as a scan output)."""
    nodes = [oh.make_node("Identity", [f"{name}_c"], [f"{name}_c_out"]), *nodes]
    return oh.make_graph(
        nodes,
        name,
        [_vi(f"{name}_i", INT64, []), _vi(f"{name}_c", BOOL, [])],
        [_vi(f"{name}_c_out", BOOL, []), _vi(out)],
    )


def _model(nodes: list[onnx.NodeProto], outputs: list[str]) -> onnx.ModelProto:
    graph = oh.make_graph(
        nodes,
        "g",
        [_vi("x"), _vi("cond", BOOL, [])],
        [_vi(o, FLOAT, [2, *SHAPE] if o == "scan" else SHAPE) for o in outputs],
        [oh.make_tensor("trips", INT64, [], [2]), oh.make_tensor("go", BOOL, [], [True])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def _if(then_branch: onnx.GraphProto, else_branch: onnx.GraphProto, out: str = "y"):
    return oh.make_node(
        "If", ["cond"], [out], name="if", then_branch=then_branch, else_branch=else_branch
    )


def _twins(*middle: onnx.NodeProto) -> onnx.ModelProto:
    """t = Relu(x) and its twin u = Relu(x), the nodes given, z = t + u."""
    return _model(
        [
            oh.make_node("Relu", ["x"], ["t"], name="relu_t"),
            oh.make_node("Relu", ["x"], ["u"], name="relu_u"),
            *middle,
            oh.make_node("Add", ["t", "u"], ["z"], name="add"),
        ],
        [*(o for n in middle for o in n.output), "z"],
    )


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy for `Graph`, which edits the model it indexes in place."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _merge_twin(model: onnx.ModelProto, old: str, new: str, producer: str) -> onnx.ModelProto:
    """`old`'s readers read its twin `new`; `old`'s producer goes (on a copy of `model`)."""
    g = Graph(_copy(model))
    g.replace_all_uses(old, new)
    g.remove_node(producer)
    assert_index_matches_nodes(g)
    return g.commit()


def _computes_the_reference(after: onnx.ModelProto, build: Build) -> None:
    """`after` computes what the model computes with the body's own tensor named apart."""
    onnx.checker.check_model(after)
    x = np.linspace(-2.0, 2.0, 6, dtype=np.float32).reshape(SHAPE)
    for cond in (True, False):
        assert_same_outputs(build("own_tensor"), after, {"x": x, "cond": np.array(cond)})


def _all_inputs(graph: onnx.GraphProto) -> list[str]:
    """Every node input of a body, nested bodies included, in order."""
    names: list[str] = []
    for node in graph.node:
        names.extend(node.input)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                names.extend(_all_inputs(a.g))
    return names


def _branches(model: onnx.ModelProto) -> dict[str, onnx.GraphProto]:
    if_node = next(n for n in model.graph.node if n.op_type == "If")
    return {a.name: a.g for a in if_node.attribute}


def test_a_branch_that_defines_the_name_keeps_its_own_and_a_loop_in_the_other_follows():
    # then: reads the outer t directly and in a nested Loop body (no shadowing there);
    # else: defines its own t (an initializer) and reads it, also in a nested Loop body.
    def build(own: str) -> onnx.ModelProto:
        then_loop = _loop_body("tl", [oh.make_node("Neg", ["t"], ["tl_o"])], "tl_o")
        then_branch = _branch(
            "then",
            [
                oh.make_node("Loop", ["trips", "go"], ["then_scan"], body=then_loop),
                oh.make_node("ReduceMax", ["then_scan"], ["then_s"], axes=[0], keepdims=0),
                oh.make_node("Add", ["then_s", "t"], ["then_o"]),
            ],
            "then_o",
        )
        else_loop = _loop_body("el", [oh.make_node("Neg", [own], ["el_o"])], "el_o")
        else_branch = _branch(
            "else",
            [
                oh.make_node("Loop", ["trips", "go"], ["else_scan"], body=else_loop),
                oh.make_node("ReduceMax", ["else_scan"], ["else_s"], axes=[0], keepdims=0),
                oh.make_node("Add", ["else_s", own], ["else_o"]),
            ],
            "else_o",
            own=own,
        )
        return _twins(_if(then_branch, else_branch))

    after = _merge_twin(build("t"), "t", "u", "relu_t")
    bodies = _branches(after)
    assert "t" not in _all_inputs(bodies["then_branch"])  # the outer t, renamed everywhere
    assert _all_inputs(bodies["then_branch"]).count("u") == 2  # the Add and the nested Neg
    assert _all_inputs(bodies["else_branch"]).count("t") == 2  # its own t, nested Neg too
    assert "u" not in _all_inputs(bodies["else_branch"])
    _computes_the_reference(after, build)


def test_the_index_follows_only_the_branch_that_read_the_outer_name():
    def build(own: str) -> onnx.ModelProto:
        then_branch = _branch("then", [oh.make_node("Neg", ["t"], ["then_o"])], "then_o")
        else_branch = _branch("else", [oh.make_node("Neg", [own], ["else_o"])], "else_o", own=own)
        return _twins(_if(then_branch, else_branch))

    g = Graph(_copy(build("t")))
    g.replace_all_uses("t", "u")
    assert "if" in g.consumers["u"] and "if" not in g.consumers.get("t", {})
    g.remove_node("relu_t")
    after = g.commit()
    outer = {name: outer_references(b) for name, b in _branches(after).items()}
    assert outer == {"then_branch": {"u"}, "else_branch": set()}
    assert list(_branches(after)["else_branch"].node[0].input) == ["t"]
    _computes_the_reference(after, build)


def test_a_body_that_defines_the_new_name_renames_its_own_first():
    # the then branch reads the outer t and defines its own u (an initializer): reading u for
    # t there would read 0.25 for t
    def build(own: str) -> onnx.ModelProto:
        then_branch = _branch(
            "then",
            [oh.make_node("Neg", ["t"], ["n"]), oh.make_node("Add", [own, "n"], ["then_o"])],
            "then_o",
            own=own,
        )
        else_branch = _branch("else", [oh.make_node("Sigmoid", ["t"], ["else_o"])], "else_o")
        return _twins(_if(then_branch, else_branch))

    g = Graph(_copy(build("u")))
    g.replace_all_uses("t", "u")
    g.remove_node("relu_t")
    assert_index_matches_nodes(g)
    after = g.commit()
    then = _branches(after)["then_branch"]
    assert outer_references(then) == {"u"}
    own = then.initializer[0].name
    assert own != "u" and own in g.names_in_use()  # a fresh name, reserved
    assert list(then.node[0].input) == ["u"] and list(then.node[1].input) == [own, "n"]
    _computes_the_reference(after, build)


def test_renaming_toward_a_graph_output_respects_a_body_that_defines_it():
    # y is a graph output written by relu_y; its twin u is read by the If's then branch, which
    # defines its own y. replace_all_uses("y", "u") renames u's producer to write y and every
    # reader of u to read y: the branch's own y must not capture that read.
    def build(own: str) -> onnx.ModelProto:
        then_branch = _branch(
            "then",
            [oh.make_node("Neg", ["u"], ["n"]), oh.make_node("Add", [own, "n"], ["then_o"])],
            "then_o",
            own=own,
        )
        else_branch = _branch("else", [oh.make_node("Sigmoid", ["u"], ["else_o"])], "else_o")
        return _model(
            [
                oh.make_node("Relu", ["x"], ["y"], name="relu_y"),
                oh.make_node("Relu", ["x"], ["u"], name="relu_u"),
                _if(then_branch, else_branch, out="w"),
            ],
            ["y", "w"],
        )

    after = _merge_twin(build("y"), "y", "u", "relu_y")
    assert [o.name for o in after.graph.output] == ["y", "w"]
    assert [list(n.output) for n in after.graph.node] == [["y"], ["w"]]  # relu_u writes y
    then = _branches(after)["then_branch"]
    assert outer_references(then) == {"y"} and then.initializer[0].name != "y"
    _computes_the_reference(after, build)


def test_a_nested_loop_input_of_the_same_name_is_its_own():
    # The Loop body reads the outer t (Neg) and holds a Loop whose iteration number is called
    # t: that nested body reads its own t, the counter, which must stay the counter.
    def build(own: str) -> onnx.ModelProto:
        inner = oh.make_graph(
            [
                oh.make_node("Identity", ["dc"], ["dc_out"]),
                oh.make_node("Cast", [own], ["tf"], to=FLOAT),
                oh.make_node("Add", ["x", "tf"], ["do"]),
            ],
            "inner",
            [_vi(own, INT64, []), _vi("dc", BOOL, [])],
            [_vi("dc_out", BOOL, []), _vi("do")],
        )
        body = _loop_body(
            "b",
            [
                oh.make_node("Neg", ["t"], ["bn"]),
                oh.make_node("Loop", ["trips", "go"], ["dscan"], body=inner),
                oh.make_node("ReduceMax", ["dscan"], ["ds"], axes=[0], keepdims=0),
                oh.make_node("Add", ["bn", "ds"], ["b_o"]),
            ],
            "b_o",
        )
        return _twins(oh.make_node("Loop", ["trips", "go"], ["scan"], name="loop", body=body))

    after = _merge_twin(build("t"), "t", "u", "relu_t")
    loop = next(n for n in after.graph.node if n.op_type == "Loop")
    b = loop.attribute[0].g
    assert list(b.node[1].input) == ["u"]  # the outer t, renamed
    nested = next(n for n in b.node if n.op_type == "Loop").attribute[0].g
    assert list(nested.node[1].input) == ["t"]  # its own counter
    _computes_the_reference(after, build)


# ---------------------------------------------------------------------------- the API's edges


def _plain(nodes: list[onnx.NodeProto], outputs=("y",), inits=(), inputs=("x",)):
    graph = oh.make_graph(
        nodes, "g", [_vi(i) for i in inputs], [_vi(o) for o in outputs], list(inits)
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


def _weight(name: str, value: float) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.full(SHAPE, value, np.float32), name)


def _initializers(model: onnx.ModelProto) -> dict[str, list[float]]:
    names = [t.name for t in model.graph.initializer]
    assert len(names) == len(set(names)), f"an initializer name given twice: {names}"
    return {t.name: onnx.numpy_helper.to_array(t).ravel().tolist() for t in model.graph.initializer}


def test_an_initializer_removed_and_added_again_under_its_name_is_there_once():
    model = _plain([oh.make_node("Add", ["x", "w"], ["y"])], inits=[_weight("w", 1.0)])
    for add in ("add_initializer", "adopt_tensors"):
        g = Graph(_copy(model))
        g.remove_initializer("w")
        if add == "add_initializer":
            g.add_initializer("w", np.full(SHAPE, 3.0, np.float32), exact_name=True)
        else:
            g.adopt_tensors([("w", _weight("other", 3.0))])
        assert _initializers(g.snapshot()) == {"w": [3.0] * 6}
        out = g.commit()
        assert _initializers(out) == {"w": [3.0] * 6}
        onnx.checker.check_model(out, full_check=True)


def test_a_constant_taken_over_while_indexing_can_be_replaced_under_its_name():
    # Graph(adopt_constants=True) keeps the Constant's own tensor for c until the commit copies
    # it into its place in the list: that place is the old c once c is replaced
    model = _plain(
        [
            oh.make_node("Constant", [], ["c"], value=_weight("c", 1.0)),
            oh.make_node("Add", ["x", "c"], ["y"]),
        ]
    )
    g = Graph(_copy(model), adopt_constants=True)
    g.remove_initializer("c")
    g.add_initializer("c", np.full(SHAPE, 5.0, np.float32), exact_name=True)
    assert _initializers(g.snapshot()) == {"c": [5.0] * 6}
    out = g.commit()
    assert _initializers(out) == {"c": [5.0] * 6}
    onnx.checker.check_model(out, full_check=True)


def test_an_initializer_replaces_one_of_its_name_and_may_not_take_a_node_output():
    model = _plain(
        [oh.make_node("Relu", ["x"], ["r"], name="relu"), oh.make_node("Add", ["r", "w"], ["y"])],
        inits=[_weight("w", 1.0)],
    )
    g = Graph(_copy(model))
    g.add_initializer("w", np.full(SHAPE, 2.0, np.float32), exact_name=True)  # replaced
    g.adopt_tensors([("w", _weight("other", 4.0))])  # and again
    with pytest.raises(ValueError, match="'r' would clash with the output of 'relu'"):
        g.adopt_tensors([("r", _weight("r", 0.0))])
    with pytest.raises(ValueError, match="'r' would clash with the output of 'relu'"):
        g.add_initializer("r", np.zeros(SHAPE, np.float32), exact_name=True)
    g.remove_node("relu")  # released: constant folding's way
    g.add_initializer("r", np.zeros(SHAPE, np.float32), exact_name=True)
    out = g.commit()
    assert _initializers(out) == {"w": [4.0] * 6, "r": [0.0] * 6}
    onnx.checker.check_model(out, full_check=True)


def test_set_input_on_a_copy_not_added_yet_leaves_the_indexed_node_alone():
    model = _plain(
        [oh.make_node("Relu", ["x"], ["r"], name="relu"), oh.make_node("Neg", ["r"], ["y"])],
    )
    g = Graph(_copy(model))
    copy = onnx.NodeProto()
    copy.CopyFrom(g.nodes["relu"])  # same name, not indexed
    copy.output[0] = "r2"
    g.set_input(copy, 0, "y")
    assert g.consumers["x"] == {"relu": None} and "y" not in g.consumers
    assert_index_matches_nodes(g)
    added = g.add_node(copy)
    assert added.name != "relu" and g.consumers["y"] == {added.name: None}
    assert_index_matches_nodes(g)


def test_replacing_a_graph_input_that_is_also_an_output_keeps_the_output_the_input():
    # x is fed and returned as it is; its readers move to its copy r = Identity(x)
    model = _plain(
        [
            oh.make_node("Identity", ["x"], ["r"], name="copy"),
            oh.make_node("Abs", ["x"], ["y"], name="abs"),
        ],
        outputs=("x", "y"),
    )
    g = Graph(_copy(model))
    g.replace_all_uses("x", "r")
    g.set_input(g.nodes["copy"], 0, "x")  # the copy itself still reads x (insert-after)
    assert list(g.nodes["abs"].input) == ["r"]
    assert_index_matches_nodes(g)
    out = g.commit()
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == ["x", "y"]
    assert [n.op_type for n in out.graph.node] == ["Identity", "Abs"]
    x = np.linspace(-2.0, 2.0, 6, dtype=np.float32).reshape(SHAPE)
    assert_same_outputs(model, out, {"x": x})
