"""Review of merge's interface reconciliation (second adversarial review of graphopt.multitask)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.multitask import merge_with_report, split

X = np.array([1.5, -2.0, 3.0], np.float32)


def unary(op: str, domain: str = "") -> onnx.ModelProto:
    then = helper.make_graph(
        [helper.make_node(op, ["x"], ["t"])],  # onnxruntime reads "ai.onnx" in no body
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])],
    )
    graph = helper.make_graph(
        [
            helper.make_node(op, ["x"], ["h"], domain=domain),
            helper.make_node("ReduceMax", ["h"], ["c"], keepdims=0, domain=domain),
            helper.make_node("Cast", ["c"], ["b"], to=TensorProto.BOOL, domain=domain),
            helper.make_node("If", ["b"], ["y"], then_branch=then, else_branch=then, domain=domain),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, 17)])
    m.ir_version = 8
    return m


def test_a_model_that_spells_the_default_domain_ai_onnx_merges():
    """A model importing (and naming on its nodes) the default domain as "ai.onnx" is valid and
    runs, but the merged model imports it as "" and kept the nodes' spelling: 'the merged model
    fails onnx.checker: No opset import for domain ai.onnx'."""
    spelled = unary("Relu", "ai.onnx")
    np.testing.assert_array_equal(ort_run(spelled, {"x": X})["y"], np.maximum(X, 0))
    merged, report = merge_with_report([unary("Relu"), spelled])
    assert report.shared_nodes == 3  # Relu, ReduceMax, Cast: the If is never shared
    got = ort_run(merged, {"x": X})
    np.testing.assert_array_equal(got["m1_y"], np.maximum(X, 0))
    np.testing.assert_array_equal(ort_run(split(merged, task="m1"), {"x": X})["y"], got["m1_y"])


def _loop_and_if(k: float) -> onnx.ModelProto:
    """w = x·k (a tensor both tasks name w); y = Loop adding w three times to x, then an If
    whose branches read w and the loop's result from the outer scope."""
    f = TensorProto.FLOAT
    body = helper.make_graph(
        [
            helper.make_node("Add", ["acc_in", "w"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", f, [3]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", f, [3]),
        ],
    )
    then = helper.make_graph(
        [helper.make_node("Mul", ["looped", "w"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", f, [3])],
    )
    other = helper.make_graph(
        [helper.make_node("Sub", ["looped", "w"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", f, [3])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "k"], ["w"]),
            helper.make_node("Loop", ["n", "", "x"], ["looped"], body=body),
            helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["c"]),
            helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
        ],
        "g",
        [helper.make_tensor_value_info("x", f, [3])],
        [helper.make_tensor_value_info("y", f, [3])],
        initializer=[
            onnx.numpy_helper.from_array(np.full(3, k, np.float32), "k"),
            onnx.numpy_helper.from_array(np.array(3, np.int64), "n"),
            onnx.numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_bodies_reading_outer_names_both_tasks_define_read_their_own_task_s():
    """(Checked, not a defect.) Both tasks name w, k, looped: the second task's are renamed
    and its Loop/If bodies must read the renamed ones, in the merge and after split."""
    a, b = _loop_and_if(2.0), _loop_and_if(-3.0)
    merged, report = merge_with_report([a, b])
    assert report.shared_nodes == 2  # ReduceSum, Greater: w differs, bodies never shared
    for x in (X, -X):
        got = ort_run(merged, {"x": x})
        for prefix, m in (("m0_", a), ("m1_", b)):
            expected = ort_run(m, {"x": x})["y"]
            np.testing.assert_allclose(got[prefix + "y"], expected, rtol=1e-6)
            back = split(merged, task=prefix)
            np.testing.assert_allclose(ort_run(back, {"x": x})["y"], expected, rtol=1e-6)


def test_models_at_ir_3_merge_into_a_model_at_ir_4():
    """IR 3 models list every initializer as an input; the merge makes those constants and
    lists none, but kept IR 3 when every model had it: 'the merged model fails onnx.checker:
    w in initializer but not in graph input'."""

    def ir3(op: str) -> onnx.ModelProto:
        graph = helper.make_graph(
            [helper.make_node(op, ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3]) for n in ("x", "w")],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
            initializer=[onnx.numpy_helper.from_array(-X, "w")],
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
        m.ir_version = 3
        return m

    merged, report = merge_with_report([ir3("Add"), ir3("Mul")])
    assert merged.ir_version == 4 and report.shared_params == 3
    got = ort_run(merged, {"x": X})
    np.testing.assert_array_equal(got["m0_y"], X - X)
    np.testing.assert_array_equal(got["m1_y"], -X * X)


@pytest.mark.parametrize("unsqueeze", [True, False])
def test_a_model_whose_local_function_changed_meaning_is_converted_with_it(unsqueeze):
    """onnx.version_converter drops a model's local functions: a model at opset 11 calling one
    and using Unsqueeze (axes moved to an input in 13), merged with an opset 13 model, gave a
    model onnxruntime refused ('local:Dbl is not a registered function/op'). With Sin for the
    Unsqueeze the graph's ops keep their schemas, so the model was not converted at all, and its function's Add (changed in 13) at
    opset 11 failed the checker ('not compatible with the version imported by model')."""
    double = helper.make_function(
        "local",
        "Dbl",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 11)],
    )
    first = (
        helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0])
        if unsqueeze
        else helper.make_node("Sin", ["x"], ["u"])  # the same schema at 11 and 13
    )
    graph = helper.make_graph(
        [first, helper.make_node("Dbl", ["u"], ["y"], domain="local")],
        "old",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3] if unsqueeze else [3])],
    )
    old = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 11), helper.make_opsetid("local", 1)],
        functions=[double],
    )
    old.ir_version = 8
    new = unary("Relu")
    new.opset_import[0].version = 13
    merged, report = merge_with_report([old, new])
    assert report.converted == ["model 0"]
    expected = ort_run(old, {"x": X})["y"]
    np.testing.assert_array_equal(ort_run(merged, {"x": X})["m0_y"], expected)
    np.testing.assert_array_equal(ort_run(split(merged, task="m0"), {"x": X})["y"], expected)
