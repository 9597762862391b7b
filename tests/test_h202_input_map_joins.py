"""merge: an input_map entry does not silently join a model's other input of that name.

Model 1 reads inputs a and x and computes a - x; input_map {1: {"a": "x"}} joins its a with
model 0's x. Its own x was unified with merged x by name as well, so the task computed x - x
= 0 for every feed, and split(task) gave back Sub(a, a), without a word. Two inputs of one
model that reach one merged input, one of them by its name, are a MergeError naming the fix;
both named by the map are one value, as asked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import parser

from graphopt.cli import main
from graphopt.multitask import MergeError, merge, split
from tests.fusion_models import run_at

A = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 13]>\ng (float[2,3] x) => (float[2,3] y) { y = Relu(x) }'
)


def _sub(first: str, second: str) -> onnx.ModelProto:
    """a - x, its inputs declared in the order given."""
    return parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 13]>\n'
        f"g (float[2,3] {first}, float[2,3] {second}) => (float[2,3] y) {{ y = Sub(a, x) }}"
    )


@pytest.mark.parametrize("order", [("a", "x"), ("x", "a")])
def test_an_input_mapped_onto_another_input_of_its_model_is_refused(
    order: tuple[str, str],
) -> None:
    with pytest.raises(MergeError) as caught:
        merge([A, _sub(*order)], input_map={1: {"a": "x"}})
    text = str(caught.value)
    assert "input 'x' of 'm1_' would read merged input 'x' by its name" in text
    assert "input_map={1: {'x': 'm1_x'}}" in text and "\n" not in text


def test_the_suggested_map_keeps_the_task_what_its_model_computes() -> None:
    b = _sub("a", "x")
    merged = merge([A, b], input_map={1: {"a": "x", "x": "m1_x"}})
    rng = np.random.default_rng(202)
    a, x = rng.standard_normal((2, 2, 3)).astype(np.float32)
    got = run_at(merged, {"x": a, "m1_x": x}, "disable")
    np.testing.assert_array_equal(got["m1_y"], a - x)
    np.testing.assert_array_equal(got["m0_y"], np.maximum(a, 0))
    back = split(merged, task="m1_")
    assert [i.name for i in back.graph.input] == ["a", "x"]
    np.testing.assert_array_equal(run_at(back, {"a": a, "x": x}, "disable")["y"], a - x)


def test_two_inputs_the_map_names_alike_are_still_one_value() -> None:
    merged = merge([A, _sub("a", "x")], input_map={1: {"a": "x", "x": "x"}})
    assert [i.name for i in merged.graph.input] == ["x"]


def test_cli_says_it_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx.save(A, tmp_path / "a.onnx")
    onnx.save(_sub("a", "x"), tmp_path / "b.onnx")
    out = tmp_path / "m.onnx"
    argv = ["merge", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"), "-o", str(out)]
    assert main([*argv, "--input-map", "1:a=x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--input-map 1:x=b_x" in err and "Traceback" not in err
    assert not out.exists()
