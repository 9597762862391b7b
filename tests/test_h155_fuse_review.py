"""Adversarial review of the FuseOps partition (op kinds, post-dominator tree, three phases)
and of materialize-fusion-groups: what it found, as regression tests."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import fuse_ops
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.ir import Graph, load_model
from graphopt.passes.base import PassContext


def _value(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# ---------------------------------------------------------------------------- op kinds

MEAN = np.array([3.0, -2.0], np.float32)
VAR = np.array([4.0, 9.0], np.float32)
SCALE = np.array([1.5, 0.5], np.float32)
BIAS = np.array([0.1, 0.2], np.float32)


def _conv_bn_relu(opset: int, bn_outputs: list[str]) -> onnx.ModelProto:
    inits = {
        "w": np.array([[1.0, 0.5], [-0.5, 1.0]], np.float32).reshape(2, 2, 1, 1),
        "s": SCALE,
        "b": BIAS,
        "mu": MEAN,
        "var": VAR,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "s", "b", "mu", "var"], bn_outputs, name="bn"),
        helper.make_node("Relu", [bn_outputs[0]], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [_value("x", [2, 2, 4, 4])],
        [_value("y", [2, 2, 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("opset", [9, 12])
def test_batchnorm_with_training_outputs_before_opset_14_is_opaque(opset):
    # Opsets 7-13 have no training_mode attribute: a BatchNormalization that lists its running
    # and saved mean/variance outputs is in training mode, and onnxruntime normalizes it by the
    # batch's own statistics (a reduction over its input). node_kind read only training_mode,
    # so FuseOps grouped Conv -> BN(training) -> Relu as the Conv's elementwise epilogue.
    model = _conv_bn_relu(opset, ["n", "rm", "rv", "sm", "sv"])
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32) * 3 + 1
    w = np.array([[1.0, 0.5], [-0.5, 1.0]], np.float32)
    c = np.einsum("oi,nihw->nohw", w, x)
    per_channel = [v.reshape(1, 2, 1, 1) for v in (SCALE, BIAS)]
    batch = (c - c.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        c.var(axis=(0, 2, 3), keepdims=True) + 1e-5
    )
    y = ort_run(model, {"x": x})["y"]
    np.testing.assert_allclose(y, np.maximum(batch * per_channel[0] + per_channel[1], 0), atol=1e-5)
    assert fuse_ops(model) == [["conv"], ["bn"], ["relu"]]
    # the inference form (Y alone) keeps its kind: one group
    assert fuse_ops(_conv_bn_relu(opset, ["n"])) == [["conv", "bn", "relu"]]


# ---------------------------------------------------------------------------- materialization
# Ideas that held (kept so that a change that breaks them shows): each model's groups become
# functions that onnx.checker's full check accepts and onnxruntime runs to the same outputs.


def _materialized(model: onnx.ModelProto) -> onnx.ModelProto:
    from graphopt.passes.fusion_functions import MaterializeFusionGroups

    graph = Graph(load_model(model))
    assert MaterializeFusionGroups().run(graph, PassContext()).changed
    out = graph.commit()
    onnx.checker.check_model(out, full_check=True)
    return out


def _ir3_opset7() -> onnx.ModelProto:
    # IR 3: every initializer is also a graph input; local functions need IR 8
    model = onnx.parser.parse_model(
        """<ir_version: 3, opset_import: ["": 7]> g (float[2,4] x, float[2,4] w) => (float[2,4] y) {
          a = Relu(x)
          b = Sigmoid(a)
          c = Mul(a, b)
          y = Add(c, w)
        }"""
    )
    model.graph.initializer.append(numpy_helper.from_array(np.full((2, 4), 0.5, np.float32), "w"))
    return model


def _dead_loop_reads_a_group_tensor() -> onnx.ModelProto:
    # Relu -> Sigmoid is one group; a dead Loop's nested If body reads the Relu's output, which
    # must stay a tensor of the graph (a function output), not move inside the function
    shape = [2, 4]
    branch = [
        helper.make_graph([helper.make_node(op, ["a"], [o])], o, [], [_value(o, shape)])
        for op, o in (("Neg", "o1"), ("Identity", "o2"))
    ]
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["go"], ["go_out"]),
            helper.make_node("If", ["go"], ["v"], then_branch=branch[0], else_branch=branch[1]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("go", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("go_out", TensorProto.BOOL, []), _value("v", shape)],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Sigmoid", ["a"], ["y"], name="sigmoid"),
        helper.make_node("Loop", ["trip", "c"], ["scanned"], name="loop", body=body),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [_value("x", shape), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [_value("y", shape)],
        [numpy_helper.from_array(np.array(2, np.int64), "trip")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _existing_function_split_and_optional_input() -> onnx.ModelProto:
    # a local function already named fused_Relu_0 in graphopt.fused; a Split whose second
    # output nobody reads; a Clip whose min is omitted ("")
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["": 13, "graphopt.fused": 1]>
        g (float[2,4] x) => (float[2,2] y) {
          q = graphopt.fused.fused_Relu_0(x)
          r = Relu(q)
          p, unused = Split<axis=1>(r)
          y = Clip(p, , mx)
        }
        <domain: "graphopt.fused", opset_import: ["": 13]> fused_Relu_0 (a) => (b) { b = Neg(a) }
        """
    )
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "mx"))
    return model


@pytest.mark.parametrize(
    "build",
    [_ir3_opset7, _dead_loop_reads_a_group_tensor, _existing_function_split_and_optional_input],
)
def test_materialized_edge_cases_check_and_run_the_same(build):
    model = build()
    onnx.checker.check_model(model, full_check=True)
    out = _materialized(model)
    assert out.ir_version >= 8
    names = [(f.domain, f.name) for f in out.functions]
    assert len(names) == len(set(names)) > 0
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)}
    if any(i.name == "c" for i in model.graph.input):
        feeds["c"] = np.array(True)
    a, b = ort_run(model, feeds), ort_run(out, feeds)
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(b[name], a[name])
    if build is _dead_loop_reads_a_group_tensor:
        call = next(n for n in out.graph.node if n.domain == "graphopt.fused")
        assert list(call.output) == ["a", "y"]


# ---------------------------------------------------------------------------- trees


def _if_reading(tensor: str) -> onnx.ModelProto:
    """If -> Relu -> Sigmoid, whose then-branch reads `tensor` from the outer graph: "b" (the
    Relu's output: a cycle through two nodes) or "a" (the If's own output)."""
    out = _value("o", [2])
    then = helper.make_graph([helper.make_node("Neg", [tensor], ["o"])], "then", [], [out])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "else", [], [out])
    nodes = [
        helper.make_node("If", ["c"], ["a"], name="if", then_branch=then, else_branch=other),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Sigmoid", ["b"], ["y"], name="sigmoid"),
    ]
    inputs = [_value("x", [2]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])]
    graph = helper.make_graph(nodes, "g", inputs, [_value("y", [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [("b", "cycle through node"), ("a", "node 'if' \\(If\\) reads its own output 'a'")],
)
def test_trees_refuse_a_cycle_through_a_body_as_fuse_ops_does(tensor, message):
    # post_dominator_tree's default method (networkx) never ordered the nodes, so it answered
    # a tree for a cyclic graph where method="lca" raised; a body reading its own node's
    # output (which toposort skips) passed both trees and dominator_tree, not fuse_ops.
    from graphopt.analysis import dominator_tree, post_dominator_tree
    from graphopt.errors import LoadError

    model = _if_reading(tensor)
    for analyse in (
        post_dominator_tree,
        lambda m: post_dominator_tree(m, method="lca"),
        dominator_tree,
        fuse_ops,
    ):
        with pytest.raises(LoadError, match=message):
            analyse(model)
    assert post_dominator_tree(_if_reading("x")) == {
        "if": "relu",
        "relu": "sigmoid",
        "sigmoid": None,
    }


def test_an_einsum_equation_that_is_not_utf8_is_no_traceback(tmp_path, capsys):
    # AttributeProto.s is bytes: an equation that is not UTF-8 loads (onnx.checker's full
    # check passes it) and node_kind's .decode() raised UnicodeDecodeError out of fuse_ops,
    # `graphopt inspect` (a traceback) and materialize-fusion-groups.
    from graphopt.analysis import OpKind, node_kind
    from graphopt.cli import main

    einsum = helper.make_node("Einsum", ["r"], ["y"], name="einsum", equation="ij->ji")
    einsum.attribute[0].s = b"ij->j\xffi"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), einsum],
        "g",
        [_value("x", [2, 2])],
        [_value("y", [2, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    assert node_kind(einsum) == OpKind.OUT_EWISE_FUSABLE  # no equation it can read: as Einsum
    assert fuse_ops(model) == [["relu"], ["einsum"]]
    path = tmp_path / "einsum.onnx"
    onnx.save(model, str(path))
    assert main(["inspect", str(path), "--groups"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "2 groups" in out
