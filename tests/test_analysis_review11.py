"""Adversarial review 11 of the analysis layer: dominator trees, op kinds, the FuseOps partition,
its materialization as model-local functions, and `graphopt inspect`'s report of them.

Each test builds a small model in code and fails on the commit before its fix.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.inliner
from onnx import TensorProto, helper

from graphopt.analysis import OpKind, dominator_tree, fuse_ops, op_kind
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.cli import main
from graphopt.ir import Graph, load_model
from graphopt.passes.base import PassContext
from graphopt.passes.fusion_functions import MaterializeFusionGroups


def _value(name: str, shape: list[int] | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(
        name, TensorProto.FLOAT, [1, 4] if shape is None else shape
    )


def _model(nodes: list[onnx.NodeProto], outputs: list[str], **graph_fields) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [_value("x")], [_value(o) for o in outputs], **graph_fields
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _materialize(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = Graph(load_model(model))
    assert MaterializeFusionGroups().run(graph, PassContext()).changed
    out = graph.commit()
    onnx.checker.check_model(out, full_check=True)
    return out


def _assert_identical_outputs(a: onnx.ModelProto, b: onnx.ModelProto) -> None:
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)}
    expected, got = ort_run(a, feeds), ort_run(b, feeds)
    assert list(got) == list(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


# ---------------------------------------------------------------------------- materialize


def test_materialized_group_keeps_the_value_info_of_the_tensors_it_hides():
    # Relu → Sigmoid → Exp is one group; the model declared the types of r and s, which only
    # the group reads. They left the graph with the nodes (commit prunes value_info of tensors
    # no node writes) and the function did not carry them: inlining the functions gave back a
    # model with less value_info than the original.
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["r"], ["s"], name="sigmoid"),
        helper.make_node("Exp", ["s"], ["y"], name="exp"),
    ]
    infos = [_value("r"), _value("s", [1, "n"])]
    infos[1].doc_string = "declared by the exporter"
    model = _model(nodes, ["y"], value_info=infos)
    out = _materialize(model)
    (function,) = out.functions
    assert [vi.name for vi in function.value_info] == ["r", "s"]
    assert function.value_info[1] == infos[1]
    assert [vi.name for vi in out.graph.value_info] == []
    inlined = onnx.inliner.inline_local_functions(out)
    assert sorted(vi.type.SerializeToString() for vi in inlined.graph.value_info) == sorted(
        vi.type.SerializeToString() for vi in infos
    )
    _assert_identical_outputs(model, out)


# ---------------------------------------------------------------------------- inspect


def _inspect(tmp_path, model: onnx.ModelProto, capsys, *args: str) -> tuple[str, dict]:
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert main(["inspect", str(path), *args]) == 0
    text = capsys.readouterr().out
    assert main(["inspect", str(path), "--json", *args]) == 0
    return text, json.loads(capsys.readouterr().out)


def test_inspect_counts_every_form_of_constant_and_sparse_initializers(tmp_path, capsys):
    # Only a Constant's `value` tensor was counted: value_floats/value_ints/value_float/
    # value_int/sparse_value constants and sparse initializers were 0 parameters, and a
    # string tensor was 8 bytes per string (numpy's object pointer), whatever its text.
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sv", TensorProto.FLOAT, [2], [1.0, 2.0]),
        helper.make_tensor("si", TensorProto.INT64, [2], [0, 3]),
        [4],
    )
    weights = helper.make_sparse_tensor(
        helper.make_tensor("w", TensorProto.FLOAT, [1], [5.0]),
        helper.make_tensor("wi", TensorProto.INT64, [1], [2]),
        [1, 4],
    )
    nodes = [
        helper.make_node("Constant", [], ["c1"], name="c1", sparse_value=sparse),
        helper.make_node("Constant", [], ["c2"], name="c2", value_floats=[1.0, 2.0, 3.0, 4.0]),
        helper.make_node("Constant", [], ["c3"], name="c3", value_float=2.0),
        helper.make_node("Constant", [], ["c4"], name="c4", value_ints=[1, 4]),
        helper.make_node("Constant", [], ["c5"], name="c5", value_int=0),
        helper.make_node("Constant", [], ["c6"], name="c6", value_strings=["ab", "cde"]),
        helper.make_node("Add", ["c1", "c2"], ["a"], name="add"),
        helper.make_node("Mul", ["a", "c3"], ["b"], name="mul"),
        helper.make_node("Reshape", ["b", "c4"], ["r"], name="reshape"),
        helper.make_node("Add", ["x", "r"], ["y"], name="add_x"),
    ]
    strings = helper.make_tensor("names", TensorProto.STRING, [2], [b"abcd", b"efghij"])
    graph = helper.make_graph(
        nodes,
        "g",
        [_value("x")],
        [
            _value("y"),
            helper.make_tensor_value_info("c5", TensorProto.INT64, []),
            helper.make_tensor_value_info("c6", TensorProto.STRING, [2]),
            helper.make_tensor_value_info("names", TensorProto.STRING, [2]),
        ],
        [strings],
        sparse_initializer=[weights],  # (onnx.checker refuses one a standard op reads)
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    text, report = _inspect(tmp_path, model, capsys)
    # elements: 4 (sparse constant) + 4 + 1 + 2 + 1 + 2 (strings) + 2 (string initializer)
    # + 4 (sparse initializer); bytes: sparse constant 2·4 + 2·8, floats 16 + 4, ints 16 + 8,
    # strings 2 + 3 and 4 + 6, sparse initializer 4 + 8
    assert report["parameters"] == 20
    assert report["parameter_bytes"] == 24 + 20 + 24 + 5 + 10 + 12
    assert report["initializers"] == 2
    assert "initializers: 2  parameters: 20 (95 B)" in text


def test_inspect_reports_what_local_functions_hold(tmp_path, capsys):
    # A materialized model's ops sat inside its functions, which inspect never looked into: the
    # report listed one call per group and none of the Conv/Relu/... they stand for, and a
    # function's Constant weights were no parameters anywhere (306 of ppocr_det's nodes unseen).
    k = helper.make_tensor("k", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    act = helper.make_function(
        "my.fn",
        "Scaled",
        ["a"],
        ["b"],
        [
            helper.make_node("Constant", [], ["k"], value=k),
            helper.make_node("Mul", ["a", "k"], ["t"]),
            helper.make_node("Relu", ["t"], ["b"]),
        ],
        [helper.make_opsetid("", 17)],
    )
    nodes = [
        helper.make_node("Exp", ["x"], ["e"], name="exp"),
        helper.make_node("Sigmoid", ["e"], ["s"], name="sigmoid"),
        helper.make_node("Scaled", ["s"], ["y"], name="call", domain="my.fn"),
    ]
    model = _model(nodes, ["y"])
    model.opset_import.append(helper.make_opsetid("my.fn", 1))
    model.functions.append(act)
    out = _materialize(model)  # Exp → Sigmoid becomes a graphopt.fused function
    text, report = _inspect(tmp_path, out, capsys)
    assert report["function_bodies"] == {
        "functions": 2,
        "domains": {"graphopt.fused": 1, "my.fn": 1},
        "nodes": 5,
        "parameters": 4,
        "parameter_bytes": 16,
        "ops": {"Constant": 1, "Exp": 1, "Mul": 1, "Relu": 1, "Sigmoid": 1},
    }
    assert (
        "local function bodies: 2 functions (graphopt.fused 1, my.fn 1), 5 nodes, parameters 4 "
        "(16 B); ops: Constant 1, Exp 1, Mul 1, Relu 1, Sigmoid 1"
    ) in text
    _, plain = _inspect(tmp_path, _model(nodes[:2], ["s"]), capsys)
    assert plain["function_bodies"] is None


# ---------------------------------------------------------------------------- partition


def test_training_mode_batchnorm_and_dropout_are_opaque():
    # op kinds classify BatchNormalization and Dropout as what they are at inference (a
    # per-channel Mul/Add, an identity). A BatchNormalization with training_mode=1 normalizes
    # by its input's own statistics (a reduction over it) and a Dropout given training_mode
    # drops at random: FuseOps fused Conv → BN(training) → Relu as the Conv's "elementwise
    # epilogue", and a random Dropout into its neighbours.
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 1, 1], [0.5] * 16)
    channel = [helper.make_tensor(n, TensorProto.FLOAT, [4], [1.0] * 4) for n in "gbmv"]
    on = helper.make_tensor("on", TensorProto.BOOL, [], [True])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node(
            "BatchNormalization", ["c", *"gbmv"], ["n", "mean", "var"], name="bn", training_mode=1
        ),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("Dropout", ["r", "", "on"], ["d"], name="dropout"),
        helper.make_node("Sigmoid", ["d"], ["y"], name="sigmoid"),
    ]
    shape = [1, 4, 3, 3]
    graph = helper.make_graph(
        nodes, "g", [_value("x", shape)], [_value("y", shape)], [w, *channel, on]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    assert fuse_ops(model) == [["conv"], ["bn"], ["relu"], ["dropout"], ["sigmoid"]]
    # at inference they keep their kinds: Conv → BN → Relu → Dropout → Sigmoid is one group
    nodes[1] = helper.make_node("BatchNormalization", ["c", *"gbmv"], ["n"], name="bn")
    nodes[3] = helper.make_node("Dropout", ["r"], ["d"], name="dropout")
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    assert fuse_ops(model) == [["conv", "bn", "relu", "dropout", "sigmoid"]]
    assert {op_kind(n.op_type) for n in nodes[1::2]} == {OpKind.BROADCAST, OpKind.ELEMWISE}


def test_inspect_prints_sequence_optional_and_map_types(tmp_path, capsys):
    # A graph input or output that is no dense tensor was "? ?" (no dtype, no shape) though
    # the model declares it exactly: a sequence, an optional, a scikit-learn map.
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [1, 4])
    opt = helper.make_value_info(
        "o",
        helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.INT64, [2])),
    )
    maps = helper.make_value_info(
        "z",
        helper.make_sequence_type_proto(
            helper.make_map_type_proto(
                TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
            )
        ),
    )
    index = helper.make_tensor_value_info("i", TensorProto.INT64, [])
    nodes = [
        helper.make_node("SequenceAt", ["s", "i"], ["a"], name="at"),
        helper.make_node("OptionalHasElement", ["o"], ["has"], name="has"),
        helper.make_node(
            "ZipMap", ["a"], ["z"], name="zip", domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2, 3]
        ),
    ]
    graph = helper.make_graph(
        nodes, "g", [seq, index, opt], [maps, helper.make_tensor_value_info("has", 9, [])]
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)],
        ir_version=8,
    )
    onnx.checker.check_model(model, full_check=True)
    text, report = _inspect(tmp_path, model, capsys)
    assert report["inputs"] == [
        {"name": "s", "dtype": "sequence(float)", "shape": [1, 4]},
        {"name": "i", "dtype": "int64", "shape": []},
        {"name": "o", "dtype": "optional(int64)", "shape": [2]},
    ]
    assert report["outputs"][0] == {
        "name": "z",
        "dtype": "sequence(map(int64, float))",
        "shape": None,
    }
    assert "  s: sequence(float) [1, 4]\n" in text
    assert "  o: optional(int64) [2]\n" in text
    assert "  z: sequence(map(int64, float)) ?\n" in text


def test_inspect_groups_name_an_op_of_another_domain_as_the_op_histogram_does(tmp_path, capsys):
    # The group listing spelled a node's op without its domain: a materialized model's call
    # 'graphopt.fused.fused_Exp_0' in the histogram was 'fused_Exp_0' in its group, and a
    # custom op read as a standard one of its name.
    nodes = [
        helper.make_node("Exp", ["x"], ["e"], name="exp"),
        helper.make_node("Sigmoid", ["e"], ["s"], name="sigmoid"),
        helper.make_node("Relu", ["s"], ["y"], name="relu", domain="ai.onnx"),
    ]
    out = _materialize(_model(nodes, ["y"]))
    text, report = _inspect(tmp_path, out, capsys, "--groups")
    assert report["ops"] == {"graphopt.fused.fused_Exp_0": 1}
    assert [g["ops"] for g in report["fusion"]["groups"]] == [["graphopt.fused.fused_Exp_0"]]
    assert "#0 1 node OPAQUE: graphopt.fused.fused_Exp_0  [fused_Exp_0]" in text


# ---------------------------------------------------------------------------- dominators


def test_dominator_tree_is_the_same_with_weights_in_constant_nodes_or_initializers():
    # A Constant node has no predecessor, so it hung under the entry and every node reading
    # one had two ways in: ppocr_det and layout_cdla keep their weights in Constant nodes, and
    # 297 of ppocr_det's 330 compute nodes had only the entry as dominator (1 once the same
    # weights are initializers). Constants, and what is computed from them alone, are no way
    # in from the graph's inputs.
    def model(weights_in_nodes: bool) -> onnx.ModelProto:
        w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 1, 1], [0.5] * 16)
        shape = helper.make_tensor("shape", TensorProto.INT64, [4], [4, 4, 1, 1])
        nodes = [
            helper.make_node("Relu", ["x"], ["a"], name="relu"),
            helper.make_node("Reshape", ["w", "shape"], ["w2"], name="reshape_w"),
            helper.make_node("Conv", ["a", "w2"], ["c"], name="conv"),
            helper.make_node("RandomNormal", [], ["noise"], name="noise", shape=[1, 4, 3, 3]),
            helper.make_node("Add", ["c", "noise"], ["d"], name="add"),
            helper.make_node("Sigmoid", ["d"], ["y"], name="sigmoid"),
        ]
        inits = [w, shape]
        if weights_in_nodes:
            nodes[:0] = [
                helper.make_node("Constant", [], [t.name], name=f"k_{t.name}", value=t)
                for t in inits
            ]
            inits = []
        shape4 = [1, 4, 3, 3]
        graph = helper.make_graph(nodes, "g", [_value("x", shape4)], [_value("y", shape4)], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    expected = {
        "relu": None,
        "reshape_w": None,  # computed from constants alone: under the entry
        "conv": "relu",
        "noise": None,  # random: a way in of its own, not a constant
        "add": None,
        "sigmoid": "add",
    }
    assert dominator_tree(model(False)) == expected
    assert dominator_tree(model(True)) == {
        **expected,
        "k_w": None,
        "k_shape": None,
        "reshape_w": None,  # its two reads are both constant nodes: no single dominator
    }


def test_inspect_of_a_model_without_nodes_says_none(tmp_path, capsys):
    # A graph that passes its input through had 'ops: ' and '  sizes: ' with nothing after.
    text, report = _inspect(tmp_path, _model([], ["x"]), capsys)
    assert report["ops"] == {} and report["fusion"]["sizes"] == {}
    assert "\nops: none\n" in text
    assert "\n  sizes: none" in text
    assert "post-dominators: 0 nodes have only the exit as post-dominator" in text
