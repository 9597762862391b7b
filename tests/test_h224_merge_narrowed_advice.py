"""The merge summary's line for a narrowed input gives an `--input-map` that can be pasted.

H219's line ('... to keep it apart: --input-map I:NAME=PREFIXNAME') wrote the input's name as
the model has it: a name with a newline (ONNX allows any string) split the summary's line in
three, and a name with a space gave a flag a shell splits into several words, none of them the
spec. The spec is now one shell word (shlex-quoted; repr where a character is not printable);
a plain name prints as before.
"""

from __future__ import annotations

import shlex

import onnx
from onnx import TensorProto
from onnx import helper as h

from graphopt.commands.merge import _input_map
from graphopt.multitask import merge_with_report


def _model(dims: list[int | str], name: str) -> onnx.ModelProto:
    x = h.make_tensor_value_info(name, TensorProto.FLOAT, dims)
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    graph = h.make_graph([h.make_node("Relu", [name], ["y"])], "g", [x], [y])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _advice(name: str) -> tuple[str, list[str]]:
    models = [_model([1, 3], name), _model(["N", 3], name)]
    _, report = merge_with_report(models, prefixes=["a_", "b_"])
    assert report.tasks[1].narrowed_inputs == {name: [1, 3]}
    summary = report.summary()
    return summary, [line for line in summary.splitlines() if "to keep it apart" in line]


def test_a_name_with_a_newline_keeps_the_line_whole() -> None:
    summary, lines = _advice("in\nput")
    assert len(lines) == 1
    assert lines[0].endswith("--input-map '1:in\\nput=b_in\\nput'")
    assert not any(line.startswith("put=") for line in summary.splitlines())


def test_a_name_with_a_space_gives_one_spec_that_keeps_the_input_apart() -> None:
    name = "pixel values"
    _, lines = _advice(name)
    assert len(lines) == 1
    words = shlex.split(lines[0].split("to keep it apart: ", 1)[1])
    assert words[0] == "--input-map" and len(words) == 2, words
    models = [_model([1, 3], name), _model(["N", 3], name)]
    merged, report = merge_with_report(
        models, prefixes=["a_", "b_"], input_map=_input_map(words[1:], 2)
    )
    assert report.tasks[1].narrowed_inputs == {}
    assert report.tasks[1].inputs == {name: "b_" + name}
    dims = {
        i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]
        for i in merged.graph.input
    }
    assert dims == {name: [1, 3], "b_" + name: ["N", 3]}


def test_a_plain_name_prints_as_before() -> None:
    _, lines = _advice("x")
    assert lines[0].endswith("to keep it apart: --input-map 1:x=b_x")
