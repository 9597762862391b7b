"""split(merge([a, b]), task=...) gives each task's inputs their own doc string and metadata
props back.

A merged input takes the first model's doc string and props (the first that gives them):
split --task gave task b model a's ("image, RGB" for b's BGR input, a's props), and gave a
task that declared none the other model's. merge records where a task's own differ
("input_notes" in the task table) and split declares them again.
"""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import parser

from graphopt.multitask import MergeError, merge, split
from graphopt.multitask.merge import METADATA_KEY


def _model(op: str, doc: str, props: dict[str, str]) -> onnx.ModelProto:
    model = parser.parse_model(
        '<ir_version: 10, opset_import: ["" : 13]>\n'
        f"g (float[2,3] x) => (float[2,3] y) {{ t = Relu(x) y = {op}(t) }}"
    )
    x = model.graph.input[0]
    if doc:
        x.doc_string = doc
    for key, value in props.items():
        x.metadata_props.add(key=key, value=value)
    return model


MODELS = [
    _model("Neg", "image, RGB 0..1", {"channels": "rgb"}),
    _model("Abs", "image, BGR 0..255", {"channels": "bgr", "range": "255"}),
    _model("Sigmoid", "", {}),
]


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_each_task_gets_its_own_input_doc_string_and_props_back(order: tuple[int, ...]) -> None:
    models = [MODELS[i] for i in order]
    merged = merge(models)
    assert [i.name for i in merged.graph.input] == ["x"]  # one input for the three
    for k, own in enumerate(models):
        back = split(merged, task=f"m{k}_")
        assert list(back.graph.input) == list(own.graph.input)


def test_with_merged_names_kept_the_notes_come_back_too() -> None:
    merged = merge(MODELS[:2])
    back = split(merged, task="m1_", strip_prefix="")
    assert back.graph.input[0].doc_string == "image, BGR 0..255"
    assert {p.key: p.value for p in back.graph.input[0].metadata_props} == {
        "channels": "bgr",
        "range": "255",
    }


def test_a_damaged_input_notes_entry_is_said() -> None:
    merged = merge(MODELS[:2])
    prop = next(p for p in merged.metadata_props if p.key == METADATA_KEY)
    table = json.loads(prop.value)
    table["m1_"]["input_notes"] = {"x": {"doc_string": 3}}
    prop.value = json.dumps(table)
    with pytest.raises(MergeError, match="'input_notes' is not a mapping of inputs to doc"):
        split(merged, task="m1_")
