"""Review H164 of multitask merge/split: each test failed before its fix."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.multitask import MergeError, merge, split
from graphopt.multitask.merge import METADATA_KEY

F = TensorProto.FLOAT


def _model(op: str, **fields: object) -> onnx.ModelProto:
    """x [1, 3] → op → y, opset 17; `fields`: ModelProto / graph fields to set."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])],
        str(fields.pop("graph_name", "g")),
        [helper.make_tensor_value_info("x", F, [1, 3])],
        [helper.make_tensor_value_info("y", F, [1, 3])],
    )
    graph.doc_string = str(fields.pop("graph_doc_string", ""))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in fields.items():
        setattr(model, key, value)
    return model


FIELDS = (
    "producer_name",
    "producer_version",
    "domain",
    "model_version",
    "doc_string",
)


def _fields(model: onnx.ModelProto) -> dict[str, object]:
    got: dict[str, object] = {key: getattr(model, key) for key in FIELDS}
    got["graph_name"] = model.graph.name
    got["graph_doc_string"] = model.graph.doc_string
    return got


def test_split_task_gives_back_producer_model_version_and_graph_doc_string() -> None:
    """split --task gave each task graphopt's producer name and version, the merged graph's
    name (the prefixes joined) and doc string (none), and model_version and domain 0 and "":
    merge recorded only the model's doc string. It now records and restores the rest, an
    empty producer included (the second model has none: not "graphopt")."""
    a = _model(
        "Relu",
        producer_name="pytorch",
        producer_version="2.1.0",
        domain="com.example.vision",
        model_version=7,
        doc_string="relu task",
        graph_name="relu_net",
        graph_doc_string="the relu graph",
    )
    b = _model("Neg", graph_name="neg_net")
    merged = merge([a, b])
    assert merged.producer_name == "graphopt" and merged.graph.name == "m0+m1"
    for task, own in (("m0", a), ("m1", b)):
        for strip_prefix in (None, ""):
            back = split(merged, task=task, strip_prefix=strip_prefix)
            assert _fields(back) == _fields(own), (task, strip_prefix)
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(ort_run(split(merged, task="m0"), {"x": x})["y"], [[1, 0, 3]])


def _with_table(merged: onnx.ModelProto, edit) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    out = onnx.ModelProto()
    out.CopyFrom(merged)
    for p in out.metadata_props:
        if p.key == METADATA_KEY:
            table = json.loads(p.value)
            edit(table)
            p.value = json.dumps(table)
    return out


def test_a_table_from_before_keeps_the_merged_producer_and_graph_name() -> None:
    a = _model("Relu", producer_name="pytorch", graph_name="relu_net", model_version=3)
    b = _model("Neg")

    def drop(table: dict) -> None:
        for entry in table.values():
            for key in ("producer_name", "producer_version", "graph_name", "model_version"):
                entry.pop(key, None)

    back = split(_with_table(merge([a, b]), drop), task="m0")
    assert (back.producer_name, back.graph.name, back.model_version) == ("graphopt", "m0+m1", 0)


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("model_version", "7", "is not an int64"),
        ("model_version", True, "is not an int64"),
        ("model_version", 2**63, "is not an int64"),
        ("producer_name", 3, "is not a string"),
        ("graph_doc_string", None, "is not a string"),
    ],
)
def test_a_damaged_model_field_is_said(key, value, what) -> None:  # type: ignore[no-untyped-def]
    merged = merge([_model("Relu"), _model("Neg")])
    damaged = _with_table(merged, lambda table: table["m0_"].__setitem__(key, value))
    with pytest.raises(MergeError, match=f"task 'm0_' '{key}' {what}"):
        split(damaged, task="m0")
