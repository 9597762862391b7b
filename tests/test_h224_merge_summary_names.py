"""The merge summary's 'inputs kept apart' line stays one line for an input name with a newline.

Two models with an input of one name and different types keep the inputs apart (the later one
renamed with its prefix), and the summary lists them as 'NAME -> PREFIXNAME'. The names were
written as the models have them: an input named 'in\\nput' (valid ONNX) split the line, its
second half reading as a line of its own. Each entry is now shown as `shown` writes it (repr
where a character is not printable); a plain name prints as before.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto
from onnx import helper as h

from graphopt.multitask import merge_with_report


def _model(dtype: int, name: str) -> onnx.ModelProto:
    x = h.make_tensor_value_info(name, dtype, [1, 3])
    y = h.make_tensor_value_info("y", dtype, [1, 3])
    graph = h.make_graph([h.make_node("Abs", [name], ["y"])], "g", [x], [y])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _kept_apart(name: str) -> list[str]:
    models = [_model(TensorProto.FLOAT, name), _model(TensorProto.INT32, name)]
    _, report = merge_with_report(models, prefixes=["a_", "b_"])
    assert report.renamed_inputs == [f"{name} -> b_{name}"]
    lines = report.summary().splitlines()
    assert not any(line.startswith("put -> ") for line in lines)
    return [line for line in lines if line.startswith("inputs kept apart")]


def test_a_name_with_a_newline_keeps_the_line_whole() -> None:
    (line,) = _kept_apart("in\nput")
    assert line.endswith(": 'in\\nput -> b_in\\nput'")


def test_a_plain_name_prints_as_before() -> None:
    (line,) = _kept_apart("x")
    assert line == "inputs kept apart (same name, different type): x -> b_x"
