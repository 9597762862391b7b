"""split(task=...) gives a task back the opset imports its own model had, used or not.

The extraction keeps the imports of the domains the split part calls, so a model importing
com.microsoft and ai.onnx.ml without a node of either came back from merge then split with
the default domain only: not the model that went in. merge records each task's imports in the
task table; split now restores those its ops do not use, at the model's own versions and in its
order. A split by output names (no task) keeps only the used ones: no model's list is its."""

from __future__ import annotations

import numpy as np
from onnx import parser

from graphopt.multitask import merge, split
from tests.conftest import assert_same_outputs

A = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1, "ai.onnx.ml" : 3]>\n'
    "g (float[1,2] z) => (float[1,2] w) { w = Relu(z) }"
)
B = parser.parse_model(
    '<ir_version: 8, opset_import: ["ai.onnx.ml" : 4, "" : 18]>\n'
    "g (float[1,2] z) => (float[1,2] v) { v = Sigmoid(z) }"
)


def imports(model) -> list[tuple[str, int]]:
    return [(o.domain, o.version) for o in model.opset_import]


def test_each_task_gets_its_own_imports_back() -> None:
    merged = merge([A, B], prefixes=["a_", "b_"])
    a, b = split(merged, task="a_"), split(merged, task="b_")
    assert imports(a) == [("", 17), ("com.microsoft", 1), ("ai.onnx.ml", 3)]
    assert imports(b) == [("ai.onnx.ml", 4), ("", 18)]
    feeds = {"z": np.array([[-1.0, 2.0]], np.float32)}
    assert_same_outputs(A, a, feeds)
    assert_same_outputs(B, b, feeds)


def test_a_split_by_outputs_keeps_the_used_imports() -> None:
    merged = merge([A, B], prefixes=["a_", "b_"])
    assert imports(split(merged, ["a_w"])) == [("", 18)]
