"""split(task=...) keeps the first node's names where the task's model repeats a node (H231).

merge computes a node that repeats another of its own model (same op, attributes and inputs)
once (the report's `repeated`). The task table then recorded the repeat's names for the first
node's: a model with r1: r = Relu(x), r2: r2 = Relu(x), Add(r, r2) came back from split as
node 'r2' writing 'r2', read twice by the Add; the model's own r1 and r, which the merged model
had kept, gone. Now a node and tensor keep the name the task itself gave them; the repeat is
still computed once (split cannot give it back: merge keeps none).
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper, parser

from graphopt.multitask import merge_with_report, split

OTHER = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 17]>\ng (float[2] z) => (float[2] v) { v = Sigmoid(z) }'
)


def _repeating(first: str = "r1") -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name=first),
        helper.make_node("Relu", ["x"], ["r2"], name="r2"),
        helper.make_node("Add", ["r", "r2"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _nodes(model: onnx.ModelProto) -> list[tuple[str, list[str], list[str]]]:
    return [(n.name, list(n.input), list(n.output)) for n in model.graph.node]


def test_the_first_of_a_repeated_node_keeps_its_names() -> None:
    merged, report = merge_with_report([_repeating(), OTHER], prefixes=["a_", "b_"])
    assert report.tasks[0].repeated == {"Relu": 1}  # computed once, as before
    assert _nodes(split(merged, task="a_")) == [
        ("r1", ["x"], ["r"]),
        ("add", ["r", "r"], ["y"]),
    ]


def test_a_repeat_of_a_node_another_model_named_alike_keeps_that_name() -> None:
    # the second task's Relu is the first's (named r1 in both), then repeated as r2
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="r1"),
            helper.make_node("Neg", ["r"], ["w"], name="neg"),
        ],
        "f",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])],
    )
    first = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    first.ir_version = 8
    merged, _ = merge_with_report([first, _repeating()], prefixes=["a_", "b_"])
    nodes = _nodes(split(merged, task="b_"))
    assert nodes[0] == ("r1", ["x"], ["r"])
    assert nodes[1][0] == "add" and nodes[1][1] == ["r", "r"]


def test_control_a_shared_node_named_otherwise_gets_the_tasks_name() -> None:
    """(passes on the parent too)"""
    merged, _ = merge_with_report([_repeating(), _repeating("mine")], prefixes=["a_", "b_"])
    assert _nodes(split(merged, task="b_"))[0][0] == "mine"
