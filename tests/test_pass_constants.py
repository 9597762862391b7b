"""constants-to-initializers: Constant nodes become initializers under their own names."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.api import optimize_with_report
from graphopt.errors import LoadError
from graphopt.ir import Graph
from graphopt.pipeline import make_pipeline
from tests.conftest import assert_same_outputs
from tests.models_util import ops, run


def _model(constants: list[onnx.NodeProto], uses: list[str], opset: int = 13) -> onnx.ModelProto:
    nodes = list(constants)
    last = "x"
    for i, name in enumerate(uses):
        nodes.append(helper.make_node("Add", [last, name], [f"a{i}"], name=f"add{i}"))
        last = f"a{i}"
    nodes.append(helper.make_node("Identity", [last], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _x_to_y(nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
    """`nodes` as a model from x [2, 3] to y [2, 3] (opset 13)."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_every_dense_form_becomes_an_initializer_with_the_same_name():
    value = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "ignored")
    constants = [
        helper.make_node("Constant", [], ["c_value"], value=value),
        helper.make_node("Constant", [], ["c_float"], value_float=2.5),
        helper.make_node("Constant", [], ["c_floats"], value_floats=[1.0, 2.0, 3.0]),
    ]
    ints = [
        helper.make_node("Constant", [], ["c_int"], value_int=7),
        helper.make_node("Constant", [], ["c_ints"], value_ints=[1, 2]),
    ]
    model = _model(constants, ["c_value", "c_float", "c_floats"])
    # the int forms are unused here: only their conversion (int64 dtype, values) is checked
    model.graph.node.extend(ints)
    out = run(model, "constants-to-initializers")
    assert "Constant" not in ops(out)
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    assert set(inits) == {"c_value", "c_float", "c_floats", "c_int", "c_ints"}
    np.testing.assert_array_equal(inits["c_value"], np.arange(6).reshape(2, 3))
    assert inits["c_float"].dtype == np.float32 and inits["c_float"].shape == ()
    assert inits["c_float"] == np.float32(2.5)
    np.testing.assert_array_equal(inits["c_floats"], [1.0, 2.0, 3.0])
    assert inits["c_int"].dtype == np.int64 and inits["c_int"] == 7
    assert inits["c_ints"].dtype == np.int64 and list(inits["c_ints"]) == [1, 2]
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)}
    assert_same_outputs(model, out, feeds)


def test_float16_bytes_are_kept_exactly():
    raw = np.array([0.1, -3.0, 65504.0], dtype=np.float16)
    value = numpy_helper.from_array(raw, "v")
    nodes = [
        helper.make_node("Constant", [], ["c"], value=value),
        helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "cf"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out = run(model, "constants-to-initializers")
    (init,) = out.graph.initializer
    assert init.name == "c" and init.data_type == TensorProto.FLOAT16
    np.testing.assert_array_equal(numpy_helper.to_array(init), raw)
    assert_same_outputs(model, out, {"x": np.ones(3, np.float32)})


def test_constant_that_is_a_graph_output_stays_a_node():
    nodes = [
        helper.make_node("Constant", [], ["k"], name="k_node", value_float=1.0),
        helper.make_node("Identity", ["x"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, []),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out, report = optimize_with_report(
        model, make_pipeline("t", ["constants-to-initializers"]), explain=True
    )
    assert ops(out).count("Constant") == 1
    assert [o.name for o in out.graph.output] == ["y", "k"]
    assert ("constants-to-initializers", "k_node", "refused", "'k' is a graph output") in (
        report.explain
    )
    assert_same_outputs(model, out, {"x": np.ones(1, np.float32)})


def test_sparse_and_string_constants_are_left_alone():
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0], np.float32), "vals"),
        numpy_helper.from_array(np.array([1], np.int64), "idx"),
        [3],
    )
    nodes = [
        helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array(["a"]))),
        helper.make_node("Constant", [], ["sp"], sparse_value=sparse),
        helper.make_node("Add", ["x", "sp"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out = graphopt.optimize(model, make_pipeline("t", ["constants-to-initializers"]))
    assert ops(out).count("Constant") == 2
    assert len(out.graph.initializer) == 0


def test_converting_while_indexing_gives_what_the_pass_gives():
    # optimize() converts the Constant nodes while indexing the graph when the pipeline starts
    # with this pass (Graph(adopt_constants=True)): the same model and counts as the pass run
    # later (any pass first: no conversion while indexing)
    value = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "ignored")
    nodes = [
        helper.make_node("Constant", [], ["c_value"], value=value),  # nameless
        helper.make_node("Constant", [], ["c_float"], name="dup", value_float=2.5),
        helper.make_node("Constant", [], ["k"], name="dup", value_float=1.0),  # a graph output
        helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array(["a"]))),
        helper.make_node("Add", ["x", "c_value"], ["a"]),
        helper.make_node("Add", ["a", "c_float"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, []),
        ],
        value_info=[helper.make_tensor_value_info("c_value", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    first, report = optimize_with_report(
        model, make_pipeline("t", ["constants-to-initializers"]), explain=True
    )
    later, later_report = optimize_with_report(
        model, make_pipeline("t", ["merge-slices", "constants-to-initializers"]), explain=True
    )
    assert first.SerializeToString() == later.SerializeToString()
    assert (
        report.records[0].stats
        == later_report.records[1].stats
        == {
            "converted": 2,
            "skipped": 2,
        }
    )
    assert report.explain == later_report.explain
    assert ops(first) == ["Constant", "Constant", "Add", "Add"]  # k and the string stay
    assert [t.name for t in first.graph.initializer] == ["c_value", "c_float"]
    # disabled, it converts nothing
    kept = graphopt.optimize(
        model,
        make_pipeline("t", ["constants-to-initializers"]),
        disable=["constants-to-initializers"],
    )
    assert ops(kept).count("Constant") == 4


@pytest.mark.parametrize("other", ["Constant", "Relu"])
def test_converting_while_indexing_keeps_the_ssa_check(other):
    # a Constant adopted while indexing was never registered, so a second writer of its output
    # (another Constant, or any node) went unnoticed: default made two initializers 'c' (or an
    # initializer and a Relu both writing 'c'), a model the checker refuses, where any pipeline
    # not starting with this pass says the model is not in SSA form
    extra = {"value_float": 2.0} if other == "Constant" else {}
    nodes = [
        helper.make_node("Constant", [], ["c"], value_float=1.0),
        helper.make_node(other, [] if other == "Constant" else ["x"], ["c"], **extra),
        helper.make_node("Add", ["x", "c"], ["y"]),
    ]
    model = _x_to_y(nodes)
    for pipeline in ("simplify", "default"):
        with pytest.raises(LoadError, match=r"produced by both .* SSA form"):
            graphopt.optimize(model, pipeline)


def test_no_conversion_while_indexing_at_a_level_that_runs_nothing(tmp_path):
    # opt_level -1 (the user's, or the pipeline's) runs no pass, this one included: the
    # Constant nodes were still converted while indexing
    model = _model([helper.make_node("Constant", [], ["c"], value_float=1.0)], ["c"])
    out, report = optimize_with_report(model, "default", opt_level=-1)
    assert report.records == []
    assert ops(out).count("Constant") == 1
    yaml_file = tmp_path / "none.yaml"
    yaml_file.write_text("opt_level: -1\npasses:\n  - constants-to-initializers\n")
    assert ops(graphopt.optimize(model, yaml_file)).count("Constant") == 1
    # the user's level wins over the pipeline's
    assert ops(graphopt.optimize(model, yaml_file, opt_level=0)).count("Constant") == 0


def test_converting_while_indexing_names_the_first_ssa_clash_as_the_other_path_does():
    # two clashes, an adopted Constant pair's first: the adopting path reported the Relu pair's
    # (found while indexing, the Constants' only after), a pipeline not starting with the pass
    # the Constants' (the first in node order); both name the same clash now, with or without
    # load's node check
    nodes = [
        helper.make_node("Constant", [], ["c"], name="k1", value_float=1.0),
        helper.make_node("Constant", [], ["c"], name="k2", value_float=2.0),
        helper.make_node("Relu", ["x"], ["a"], name="r1"),
        helper.make_node("Relu", ["x"], ["a"], name="r2"),
        helper.make_node("Add", ["a", "c"], ["y"], name="add"),
    ]
    model = _x_to_y(nodes)
    first = r"tensor 'c' is produced by both 'k1' and 'k2'"
    for pipeline in ("simplify", "default"):
        with pytest.raises(LoadError, match=first):
            graphopt.optimize(model, pipeline)
    for adopt in (False, True):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        with pytest.raises(LoadError, match=first):
            Graph(copy, adopt_constants=adopt)
