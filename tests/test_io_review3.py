"""Review 3 of the lossless round trip: what `optimize` with no passes (and the built-in
pipelines) must keep of a model, each case a defect found and fixed."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto
from onnx import numpy_helper as nh

import graphopt
from graphopt.backends.onnxruntime import run
from graphopt.pipeline import Pipeline

NO_PASSES = Pipeline("none", [])


def _with_sparse_initializer() -> onnx.ModelProto:
    """y = x + sp, sp a sparse initializer that the graph's value_info describes."""
    sparse = oh.make_sparse_tensor(
        nh.from_array(np.ones(1, np.float32), "sp"),
        nh.from_array(np.array([1], np.int64), "sp_i"),
        [3],
    )
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "sp"], ["y"], name="add")],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        value_info=[oh.make_tensor_value_info("sp", TensorProto.FLOAT, [3], doc_string="sp")],
        sparse_initializer=[sparse],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=9)


@pytest.mark.parametrize("pipeline", [NO_PASSES, "default"], ids=["no-passes", "default"])
def test_value_info_of_a_sparse_initializer_is_kept(pipeline):
    """Fails on the parent: commit pruned every value_info that was not a node output, graph
    input or dense initializer, so a sparse initializer's description was dropped even by a
    round trip with no passes."""
    model = _with_sparse_initializer()
    out = graphopt.optimize(model, pipeline)
    assert [vi.SerializeToString() for vi in out.graph.value_info] == [
        vi.SerializeToString() for vi in model.graph.value_info
    ]
    assert len(out.graph.sparse_initializer) == 1
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(run(out, {"x": x})["y"], x + np.array([0, 1, 0], np.float32))


def _hardswish_at_opset_10() -> onnx.ModelProto:
    """x·clip(x + 3, 0, 6)/6 + 0.5 at opset 10 (HardSwish needs 14), carrying what onnx's version
    converter drops: graph and node metadata_props, an initializer's doc string, a
    quantization annotation, a sparse initializer."""
    nodes = [
        oh.make_node("Add", ["x", "three"], ["a"], name="a"),
        oh.make_node("Clip", ["a"], ["c"], name="c", min=0.0, max=6.0),
        oh.make_node("Mul", ["x", "c"], ["m"], name="m"),
        oh.make_node("Div", ["m", "six"], ["d"], name="d"),
        oh.make_node("Add", ["d", "scale"], ["y"], name="last"),
    ]
    nodes[4].metadata_props.add(key="node", value="kept")
    three = nh.from_array(np.array(3, np.float32), "three")
    six = nh.from_array(np.array(6, np.float32), "six")
    scale = nh.from_array(np.array(0.5, np.float32), "scale")
    scale.doc_string = "the scale"
    sparse = oh.make_sparse_tensor(
        nh.from_array(np.ones(1, np.float32), "sp"),
        nh.from_array(np.array([1], np.int64), "sp_i"),
        [4],
    )
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [three, six, scale],
        sparse_initializer=[sparse],
    )
    graph.metadata_props.add(key="graph", value="kept")
    annotation = graph.quantization_annotation.add()
    annotation.tensor_name = "y"
    entry = annotation.quant_parameter_tensor_names.add()
    entry.key, entry.value = "SCALE_TENSOR", "scale"
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 10)], ir_version=10)


def test_upgrade_opset_keeps_what_the_converter_drops():
    """Fails on the parent: onnx.version_converter rebuilds the graph without its
    metadata_props, quantization annotations, sparse initializers, node metadata_props and
    initializer doc strings, and upgrade_opset took its output as it was."""
    model = _hardswish_at_opset_10()
    out = graphopt.optimize(model, "default", upgrade_opset=True)
    assert out.opset_import[0].version == 14
    assert "HardSwish" in [n.op_type for n in out.graph.node]
    assert [(p.key, p.value) for p in out.graph.metadata_props] == [("graph", "kept")]
    last = next(n for n in out.graph.node if n.name == "last")
    assert [(p.key, p.value) for p in last.metadata_props] == [("node", "kept")]
    assert {t.name: t.doc_string for t in out.graph.initializer}["scale"] == "the scale"
    assert [a.SerializeToString() for a in out.graph.quantization_annotation] == [
        a.SerializeToString() for a in model.graph.quantization_annotation
    ]
    assert [s.SerializeToString() for s in out.graph.sparse_initializer] == [
        s.SerializeToString() for s in model.graph.sparse_initializer
    ]
    x = np.linspace(-5, 5, 4, dtype=np.float32).reshape(1, 4)
    np.testing.assert_allclose(
        run(out, {"x": x})["y"], run(model, {"x": x})["y"], rtol=1e-6, atol=1e-6
    )


def test_upgrade_opset_leaves_a_model_with_training_info_at_its_opset():
    """Fails on the parent: the converter drops training_info (whose graphs are at the old
    opset), and the upgraded model came back without it."""
    model = _hardswish_at_opset_10()
    model.training_info.add().algorithm.name = "train"
    out = graphopt.optimize(model, "default", upgrade_opset=True)
    assert out.opset_import[0].version == 10
    assert [t.SerializeToString() for t in out.training_info] == [
        t.SerializeToString() for t in model.training_info
    ]


@pytest.mark.realmodel
def test_dump_dir_and_verify_each_leave_the_optimized_model_as_it_is(real_model, tmp_path):
    """Fails on the parent: the dump folder and the checker after each pass committed the
    graph, which re-indexed its nodes in the order written; the passes after it met them in
    another order, and layout_cdla's default-pipeline output came out with its 333 nodes in
    another order than without them (same nodes, same initializers). They look at a
    `Graph.snapshot` now."""
    path = str(real_model("layout_cdla"))
    plain = graphopt.optimize(path, "default").SerializeToString()
    dumped = graphopt.optimize(path, "default", dump_dir=tmp_path / "dump")
    assert dumped.SerializeToString() == plain
    assert len(list((tmp_path / "dump").iterdir())) > 1
    checked = graphopt.optimize(path, "default", verify_each=True)
    assert checked.SerializeToString() == plain


def test_snapshot_is_what_commit_writes_and_leaves_the_graph_alone():
    """Graph.snapshot gives the model commit would write (Constant nodes taken over while
    indexing included, a removed initializer and a pruned value_info left out) and leaves
    the graph's own protobuf as it was."""
    from graphopt.ir import Graph

    model = _with_sparse_initializer()
    model.graph.node.insert(
        0, oh.make_node("Constant", [], ["c"], value=nh.from_array(np.ones(3, np.float32)))
    )
    model.graph.node[-1].input[1] = "c"
    model.graph.node.append(oh.make_node("Add", ["y", "sp"], ["z"], name="z"))
    model.graph.output[0].name = "z"
    model.graph.value_info.append(oh.make_tensor_value_info("gone", TensorProto.FLOAT, [3]))
    model.graph.initializer.append(nh.from_array(np.zeros(3, np.float32), "unused"))
    graph = Graph(model, adopt_constants=True)
    graph.remove_initializer("unused")
    before = model.SerializeToString()
    snap = graph.snapshot()
    assert model.SerializeToString() == before
    assert [t.name for t in snap.graph.initializer] == ["c"]
    assert [vi.name for vi in snap.graph.value_info] == ["sp"]
    assert snap.SerializeToString() == graph.commit(reindex=False).SerializeToString()


def test_upgrade_opset_keeps_what_the_converter_drops_in_bodies():
    """Fails on the parent: the converter drops the metadata_props of an If branch and of
    the nodes in it as it does the main graph's."""
    model = _hardswish_at_opset_10()
    then_branch = oh.make_graph(
        [oh.make_node("Relu", ["y"], ["t"], name="then_relu")],
        "then_branch",
        [],
        [oh.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
    )
    then_branch.metadata_props.add(key="branch", value="kept")
    then_branch.node[0].metadata_props.add(key="body node", value="kept")
    else_branch = oh.make_graph(
        [oh.make_node("Neg", ["y"], ["e"], name="else_neg")],
        "else_branch",
        [],
        [oh.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])],
    )
    graph = model.graph
    graph.node.append(
        oh.make_node(
            "If", ["cond"], ["z"], name="if", then_branch=then_branch, else_branch=else_branch
        )
    )
    graph.input.append(oh.make_tensor_value_info("cond", TensorProto.BOOL, []))
    graph.output[0].CopyFrom(oh.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4]))
    out = graphopt.optimize(model, "default", upgrade_opset=True)
    assert out.opset_import[0].version == 14
    node = next(n for n in out.graph.node if n.op_type == "If")
    body = next(a.g for a in node.attribute if a.name == "then_branch")
    assert [(p.key, p.value) for p in body.metadata_props] == [("branch", "kept")]
    assert [(p.key, p.value) for p in body.node[0].metadata_props] == [("body node", "kept")]
    x = np.linspace(-5, 5, 4, dtype=np.float32).reshape(1, 4)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        np.testing.assert_allclose(
            run(out, feeds)["z"], run(model, feeds)["z"], rtol=1e-6, atol=1e-6
        )
