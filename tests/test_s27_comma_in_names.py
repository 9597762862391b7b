"""Name lists given on the command line (`split --outputs`, `distill-targets --hints`...) can
name a tensor with a comma in it, written `\\,`: tf2onnx's 'concat,1' could not be kept."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.commands._common import comma_list


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("a,b,,c", ["a", "b", "c"]),
        ("concat\\,1,y", ["concat,1", "y"]),
        ("a\\\\,b", ["a\\", "b"]),  # a name ending in a backslash: doubled
        ("x\\y,z", ["x\\y", "z"]),  # a backslash before anything else is itself
        ("a\\", ["a\\"]),
        ("", []),
        (None, []),
    ],
)
def test_comma_list(text: str | None, names: list[str]) -> None:
    assert comma_list(text) == names


def test_split_keeps_an_output_with_a_comma_in_its_name(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["concat,1"]),
            helper.make_node("Neg", ["x"], ["other"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [
            helper.make_tensor_value_info("concat,1", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("other", TensorProto.FLOAT, [2]),
        ],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    out = tmp_path / "o.onnx"
    assert main(["split", str(path), "--outputs", "concat\\,1", "-o", str(out)]) == 0
    kept = onnx.load(out)
    assert [o.name for o in kept.graph.output] == ["concat,1"]
    assert [n.op_type for n in kept.graph.node] == ["Relu"]
