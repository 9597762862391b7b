"""Review of split(merge(...)): the task a split gives back has its own model's interface and
behaviour (second adversarial review of graphopt.multitask)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.onnxruntime import session
from graphopt.multitask import split, task_table

FLOAT = TensorProto.FLOAT
OPSET = helper.make_opsetid("", 17)
LOCAL = helper.make_opsetid("local", 1)


def model(nodes, inputs, outputs, *, initializers=(), functions=(), opsets=(), ir=8):
    """A model of `nodes` with float inputs/outputs of shape [3] (names given)."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, FLOAT, [3]) for n in inputs],
        [helper.make_tensor_value_info(n, FLOAT, [3]) for n in outputs],
        initializer=list(initializers),
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), *opsets],
        functions=list(functions),
    )
    m.ir_version = ir
    return m


def positional(m: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's run(None, feeds): the outputs in the model's own order."""
    return session(m).run(None, feeds)


X = np.array([1.5, -2.0, 3.0], np.float32)
W = np.array([0.5, 0.25, -1.0], np.float32)


def test_split_task_gives_back_the_output_and_input_order_and_unused_inputs():
    """The task table was written with sorted keys: split(task) returned the outputs sorted by
    name ([aa, zz] for a model declaring [zz, aa]) and the inputs in the merged order, so a
    positional reader (run(None), engine bindings) read the wrong tensors; an input the task
    declares but does not read was dropped (feeding it was then an error)."""
    a = model(
        [helper.make_node("Add", ["x", "w"], ["zz"]), helper.make_node("Neg", ["x"], ["aa"])],
        ["w", "x", "unused"],
        ["zz", "aa"],
    )
    b = model([helper.make_node("Abs", ["x"], ["q"])], ["x"], ["q"])
    merged = graphopt.merge([b, a])
    back = split(merged, task="m1")
    assert [o.name for o in back.graph.output] == ["zz", "aa"]
    assert [i.name for i in back.graph.input] == ["w", "x", "unused"]
    feeds = {"w": W, "x": X, "unused": X}
    for got, expected in zip(positional(back, feeds), positional(a, feeds), strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.realmodel
def test_real_layout_task_split_keeps_its_eight_outputs_in_order(real_model, real_feeds):
    full = onnx.load(str(real_model("layout_cdla")))
    merged = graphopt.merge([full, full], prefixes=["a_", "b_"])
    back = split(merged, task="b")
    assert [o.name for o in back.graph.output] == [o.name for o in full.graph.output]
    f = real_feeds("layout_cdla", 1)[0]
    for got, expected in zip(positional(back, f), positional(full, f), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_split_task_of_an_ir3_model_whose_initializer_is_listed_as_an_input():
    """An IR < 4 initializer listed as a graph input becomes a constant in the merge, but the
    task table listed it as an input (bw -> w, the merged constant equal to it): split(task)
    renamed the readers of w back to bw and left the initializer w, a model the checker
    refused ('bw' read before it is defined)."""
    a = model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        ["x"],
        ["y"],
        initializers=[onnx.numpy_helper.from_array(W, "w")],
    )
    b = model(
        [helper.make_node("Mul", ["x", "bw"], ["y"])],
        ["x", "bw"],
        ["y"],
        initializers=[onnx.numpy_helper.from_array(W, "bw")],
        ir=3,
    )
    merged = graphopt.merge([a, b])
    assert task_table(merged)["m1_"]["inputs"] == {"x": "x"}
    back = split(merged, task="m1")
    np.testing.assert_array_equal(ort_run(back, {"x": X})["y"], X * W)


def test_split_keeps_a_local_function_called_only_from_another_function():
    """split kept the functions the kept nodes call, not those the kept functions call: with
    Outer calling Inner, the split model lost Inner and onnxruntime refused to load it
    ('local:Inner is not a registered function/op'; the checker did not notice)."""
    inner = helper.make_function(
        "local", "Inner", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["b"])], [OPSET]
    )
    outer = helper.make_function(
        "local",
        "Outer",
        ["a"],
        ["b"],
        [
            helper.make_node("Inner", ["a"], ["t"], domain="local"),
            helper.make_node("Relu", ["t"], ["b"]),
        ],
        [OPSET, LOCAL],
    )
    a = model(
        [helper.make_node("Outer", ["x"], ["y"], domain="local")],
        ["x"],
        ["y"],
        functions=[inner, outer],
        opsets=[LOCAL],
    )
    b = model([helper.make_node("Abs", ["x"], ["q"])], ["x"], ["q"])
    merged = graphopt.merge([a, b])
    for back in (split(merged, task="m0"), split(merged, ["m0_y"])):
        assert sorted(f.name for f in back.functions) == ["Inner", "Outer"]
        np.testing.assert_array_equal(ort_run(back, {"x": X})[back.graph.output[0].name], [0, 2, 0])
    assert [f.name for f in split(merged, task="m1").functions] == []


def test_split_task_whose_output_an_earlier_task_computes_under_that_name():
    """b outputs the backbone tensor feat (and a head on it), which a computes as an internal
    tensor also named feat: the merged graph computes it once, under a's name, and split(task=b)
    refused ('cannot rename back to feat: the names are taken'). The internal tensor is now
    renamed out of the way."""
    a = model(
        [helper.make_node("Relu", ["x"], ["feat"]), helper.make_node("Neg", ["feat"], ["out"])],
        ["x"],
        ["out"],
    )
    b = model(
        [helper.make_node("Relu", ["x"], ["feat"]), helper.make_node("Abs", ["feat"], ["head"])],
        ["x"],
        ["feat", "head"],
    )
    only_feat = model([helper.make_node("Relu", ["x"], ["feat"])], ["x"], ["feat"])
    for task in (b, only_feat):
        merged = graphopt.merge([a, task])
        back = split(merged, task="m1")
        assert [o.name for o in back.graph.output] == [o.name for o in task.graph.output]
        for got, expected in zip(
            positional(back, {"x": X}), positional(task, {"x": X}), strict=True
        ):
            np.testing.assert_array_equal(got, expected)
