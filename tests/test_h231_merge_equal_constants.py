"""merge keeps two constants of one model under two names apart, even when they are equal (H231).

A model with weights W1 and W2 holding equal 2x2 values, merged with another model, was one
tensor W2 read by both MatMuls: `split(task=...)` gave back W2 twice and no W1, and the report
counted the task 4 params where its model holds 8. Two names for one value are the model's own
choice: merge now keeps them apart (sharing by value is for constants of different models, the
k-th copy of a value in one model with the k-th in another), split gives each back under its
name, and a task's params are those its model holds.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper, parser

from graphopt.multitask import merge_with_report, split

W = np.arange(4, dtype=np.float32).reshape(2, 2)
OTHER = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 17]>\ng (float[2,2] z) => (float[2,2] v) { v = Relu(z) }'
)


def _two_matmuls(first: np.ndarray, second: np.ndarray, *, constant_node: bool = False):
    """x -> MatMul(W1) -> MatMul(W2) -> y; W2 a Constant node with `constant_node`."""
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["a"], name="mm1"),
        helper.make_node("MatMul", ["a", "W2"], ["y"], name="mm2"),
    ]
    inits = [numpy_helper.from_array(first, "W1")]
    if constant_node:
        value = numpy_helper.from_array(second, "W2")
        nodes.insert(0, helper.make_node("Constant", [], ["W2"], name="c2", value=value))
    else:
        inits.append(numpy_helper.from_array(second, "W2"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _one_matmul(weight: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        "h",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _reads(model: onnx.ModelProto) -> dict[str, list[str]]:
    return {n.name: list(n.input) for n in model.graph.node if n.op_type != "Constant"}


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def test_equal_weights_of_one_model_stay_two_and_split_gives_both_back() -> None:
    model = _two_matmuls(W, W.copy())
    merged, report = merge_with_report([model, OTHER], prefixes=["a_", "b_"])
    task = report.tasks[0]
    assert (task.params, task.shared_params) == (8, 0)  # its model holds 8 values
    assert (report.params_separate, report.params_merged, report.shared_params) == (8, 8, 0)
    back = split(merged, task="a_")
    assert sorted(t.name for t in back.graph.initializer) == ["W1", "W2"]
    assert _reads(back) == {"mm1": ["x", "W1"], "mm2": ["a", "W2"]}
    x = np.linspace(-1, 1, 4, dtype=np.float32).reshape(2, 2)
    np.testing.assert_array_equal(_run(back, {"x": x})[0], _run(model, {"x": x})[0])


def test_an_initializer_and_a_constant_node_of_one_value_in_one_model_stay_two() -> None:
    model = _two_matmuls(W, W.copy(), constant_node=True)
    merged, report = merge_with_report([model, OTHER], prefixes=["a_", "b_"])
    assert report.tasks[0].params == 8
    back = split(merged, task="a_")
    assert _reads(back) == {"mm1": ["x", "W1"], "mm2": ["a", "W2"]}
    assert [t.name for t in back.graph.initializer] == ["W1"]
    assert [n.output[0] for n in back.graph.node if n.op_type == "Constant"] == ["W2"]


def test_across_models_equal_constants_are_still_shared() -> None:
    model = _two_matmuls(W, W.copy())
    # with itself: each copy of the value shared with the same copy of the other
    merged, report = merge_with_report([model, model], prefixes=["a_", "b_"])
    assert len(merged.graph.initializer) == 2
    assert [t.params for t in report.tasks] == [8, 8]
    assert (report.params_separate, report.params_merged, report.shared_params) == (16, 8, 8)
    assert report.shared_nodes == 2
    for prefix in ("a_", "b_"):
        assert _reads(split(merged, task=prefix)) == {"mm1": ["x", "W1"], "mm2": ["a", "W2"]}
    # a model holding the value once shares it with the first copy
    merged, report = merge_with_report([model, _one_matmul(W)], prefixes=["a_", "b_"])
    assert len(merged.graph.initializer) == 2
    assert [(t.params, t.shared_params) for t in report.tasks] == [(8, 4), (4, 4)]
    assert (report.params_separate, report.params_merged, report.shared_params) == (12, 8, 4)
    assert "separate: 3 nodes, 12 params" in report.summary()
    assert "merged: 2 nodes, 8 params" in report.summary()  # the MatMul(x, W) shared too
    back = split(merged, task="b_")
    assert [t.name for t in back.graph.initializer] == ["W"]
    assert _reads(back) == {"mm": ["x", "W"]}


def test_without_sharing_equal_constants_of_one_model_stay_two() -> None:
    merged, report = merge_with_report(
        [_two_matmuls(W, W.copy()), OTHER], prefixes=["a_", "b_"], share=False
    )
    assert report.tasks[0].params == report.params_merged == 8
    assert _reads(split(merged, task="a_")) == {"mm1": ["x", "W1"], "mm2": ["a", "W2"]}


def test_two_near_weights_near_one_earlier_weight_the_second_keeps_its_own() -> None:
    rng = np.random.default_rng(231)
    w = rng.standard_normal((2, 2)).astype(np.float32)
    # both within 1% of the first model's weight (0.8% apart): only the first reads it
    near = _two_matmuls(w * np.float32(1.004), w * np.float32(0.996))
    merged, report = merge_with_report(
        [_one_matmul(w), near], prefixes=["a_", "b_"], tolerance=0.01
    )
    assert len(merged.graph.initializer) == 2
    assert report.tasks[1].params == 8 and report.shared_params == 4
    back = split(merged, task="b_")
    values = {t.name: numpy_helper.to_array(t) for t in back.graph.initializer}
    np.testing.assert_array_equal(values["W1"], w)  # the first model's, within the tolerance
    np.testing.assert_array_equal(values["W2"], w * np.float32(0.996))  # its own
    assert _reads(back) == {"mm1": ["x", "W1"], "mm2": ["a", "W2"]}


def test_control_one_copy_in_each_model_is_one_tensor() -> None:
    """(passes on the parent too: sharing by value across models as before)"""
    merged, report = merge_with_report([_one_matmul(W), _one_matmul(W)], prefixes=["a_", "b_"])
    assert len(merged.graph.initializer) == 1
    assert (report.params_separate, report.params_merged, report.shared_params) == (8, 4, 4)
    assert _reads(split(merged, task="b_")) == {"mm": ["x", "W"]}
