"""A node whose If body reads the node's own output (a cycle load refuses for optimize), given
to the analyses as a path or bytes: `topological_order` answered an order and the trees and
groups a LoadError naming no model, where the same model as a ModelProto (and `optimize`, in
every form) is refused with one LoadError naming it; `graphopt inspect` said the cycle without
the file's name. Now every form is indexed with load's node checks: the same one-line error."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.analysis import dominator_tree, fuse_ops, post_dominator_tree, topological_order
from graphopt.cli import main

CYCLE = "node 'i1' (If) reads its own output 'y' in its If/Loop/Scan body: a cycle"


def _body_reads_own_output() -> onnx.ModelProto:
    out = helper.make_tensor_value_info("yt", TensorProto.FLOAT, [2])
    other = helper.make_tensor_value_info("ye", TensorProto.FLOAT, [2])
    then = helper.make_graph([helper.make_node("Relu", ["y"], ["yt"])], "t", [], [out])
    orelse = helper.make_graph([helper.make_node("Neg", ["y"], ["ye"])], "e", [], [other])
    node = helper.make_node("If", ["c"], ["y"], name="i1", then_branch=then, else_branch=orelse)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


@pytest.mark.parametrize(
    "analysis", [post_dominator_tree, dominator_tree, fuse_ops, topological_order]
)
def test_every_form_of_the_model_is_refused_as_optimize_refuses_it(tmp_path, analysis):
    model = _body_reads_own_output()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    for given, where in (
        (model, "the given ModelProto"),
        (model.SerializeToString(), "the given bytes"),
        (path, str(path)),
        (str(path), str(path)),
    ):
        with pytest.raises(graphopt.LoadError) as optimized:
            graphopt.optimize(given)
        assert str(optimized.value) == f"{where}: {CYCLE}"
        with pytest.raises(graphopt.LoadError) as raised:
            analysis(given)
        assert str(raised.value) == f"{where}: {CYCLE}", analysis.__name__


def test_inspect_names_the_file(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_body_reads_own_output(), str(path))
    assert main(["inspect", str(path), "--groups"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err == f"graphopt inspect: error: {path}: {CYCLE}\n"


def test_a_body_reading_an_earlier_output_is_no_cycle(tmp_path):
    """The control: a body reading another node's output is analysed in every form."""
    model = _body_reads_own_output()
    model.graph.node.insert(0, helper.make_node("Identity", ["c"], ["x"], name="id"))
    model.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [2]))
    model.graph.node.insert(1, helper.make_node("Relu", ["z"], ["r"], name="relu"))
    for body in (model.graph.node[2].attribute[0].g, model.graph.node[2].attribute[1].g):
        body.node[0].input[0] = "r"
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    want = {"id": None, "relu": "i1", "i1": None}
    for given in (model, model.SerializeToString(), path):
        assert post_dominator_tree(given) == want
        assert topological_order(given) == ["id", "relu", "i1"]
