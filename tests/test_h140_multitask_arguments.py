"""graphopt.merge / merge_with_report / split / task_table given arguments they do not take.

Found by an API review: `merge("cls.onnx")` iterated the path's letters ("/: is a directory"),
a Path or a ModelProto given alone was "object is not iterable", `merge(..., foo=1)` and
`split(..., foo=1)` were Python's TypeError, and wrongly typed options failed deep inside
(prefixes="ab" merged under the prefixes "a" and "b", share="no" turned sharing on,
tolerance="0.1" and input_map="x" were TypeError / ValueError, split(m, "y") looked for the
tensors 'y'). Each is now an `OptionError` (a GraphoptError and a ValueError) on one line that
names the argument, what it takes and what it got.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.errors import GraphoptError, OptionError
from graphopt.multitask import MergeError, merge, merge_with_report, split, task_table
from graphopt.realmodels import fetch_model

pytestmark = pytest.mark.realmodel

CLS = ["transpose_0.tmp_0", "transpose_2.tmp_0", "transpose_4.tmp_0", "transpose_6.tmp_0"]
BOX = ["transpose_1.tmp_0", "transpose_3.tmp_0", "transpose_5.tmp_0", "transpose_7.tmp_0"]


@pytest.fixture(scope="module")
def layout() -> Path:
    return fetch_model("layout_cdla")


@pytest.fixture(scope="module")
def heads(layout: Path) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """PP-PicoDet's class-score and box heads on their shared backbone (the README's set)."""
    return split(layout, CLS), split(layout, BOX)


def refused(call, *needles: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(OptionError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, GraphoptError) and isinstance(info.value, ValueError)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_one_model_given_alone_is_refused_naming_what_merge_takes(layout: Path) -> None:
    model = onnx.load(layout)
    data = layout.read_bytes()
    for given, what in [
        (str(layout), f"got the path {str(layout)!r}"),
        (layout, f"got the path {str(layout)!r}"),
        (data, f"got one serialized model (bytes, {len(data)} bytes)"),
        (model, "got one onnx.ModelProto"),
    ]:
        refused(lambda g=given: graphopt.merge(g), "merge takes several models", "a list", what)
    message = refused(lambda: graphopt.merge(str(layout), str(layout)), "as one argument")
    assert "got 2 positional arguments" in message


def test_models_merge_cannot_order_or_load_are_refused(layout: Path) -> None:
    for given, what in [(None, "got NoneType None"), (3, "got int 3")]:
        refused(lambda g=given: merge(g), "merge takes several models", what)
    for unordered in ({str(layout)}, {"a": str(layout)}):
        kind = type(unordered).__name__
        refused(lambda u=unordered: merge(u), "in an order", f"got a {kind}")
    refused(lambda: merge([layout, 3]), "models[1] is int 3, not a model")
    refused(lambda: merge([[layout, layout]]), "models[0] is list")
    with pytest.raises(MergeError, match="needs at least one model, got an empty tuple"):
        merge(())


def _keyword_options(function) -> list[str]:  # type: ignore[no-untyped-def]
    params = inspect.signature(function).parameters.values()
    return [
        p.name
        for p in params
        if p.kind is p.KEYWORD_ONLY
        or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)
    ]


def test_an_unknown_option_names_itself_and_every_option_taken(layout: Path) -> None:
    for function, name in [(merge, "merge"), (merge_with_report, "merge_with_report")]:
        options = _keyword_options(function)
        message = refused(lambda f=function: f([layout, layout], foo=1), f"{name}: ")
        assert message.endswith(f"unknown option 'foo'; options: {', '.join(options)}")
    message = refused(lambda: graphopt.merge([layout, layout], prefix=3))
    assert "unknown option 'prefix' (did you mean prefixes?)" in message
    options = _keyword_options(split)
    assert options == ["outputs", "task", "strip_prefix", "check"]
    message = refused(lambda: graphopt.split(layout, CLS, foo=1), "split: ")
    assert message.endswith(f"unknown option 'foo'; options: {', '.join(options)}")


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        ({"prefixes": "ab"}, ["prefixes must be a list of strings, one per model", "str 'ab'"]),
        ({"prefixes": 3}, ["prefixes must be a list of strings", "got int 3"]),
        ({"prefixes": ["a_", 2]}, ["prefixes must be strings", "got int 2"]),
        ({"tolerance": "0.1"}, ["tolerance must be a number", "got str '0.1'"]),
        ({"tolerance": None}, ["tolerance must be a number", "got NoneType None"]),
        ({"tolerance": True}, ["tolerance must be a number", "got bool True"]),
        ({"tolerance": np.complex64(1j)}, ["tolerance must be a number", "got complex64"]),
        ({"tolerance": 0.1, "share": False}, ["share=False shares none"]),
        ({"share": "no"}, ["share must be True or False, got str 'no'"]),
        ({"check": "no"}, ["check must be True or False, got str 'no'"]),
        ({"input_map": "x"}, ["input_map must be a list", "keyed by model index or prefix"]),
        ({"input_map": ["image"]}, ["input_map[0] must map the model's input names"]),
        ({"input_map": {1: "image"}}, ["input_map[1] must map", "got str 'image'"]),
        ({"input_map": {1: {"image": 3}}}, ["input_map[1] must map", "{'image': 3}"]),
        ({"input_map": {True: {"image": "image"}}}, ["input_map keys must be model indices"]),
        ({"input_map": [None, {"image": ""}]}, ["input_map[1] maps 'image' to an empty name"]),
        ({"macs_input_shapes": [1, 2]}, ["macs_input_shapes must map merged input names"]),
        ({"macs_input_shapes": {"image": "1,3"}}, ["macs_input_shapes image: dims must be"]),
        ({"macs_input_shapes": {"image": [1, 3, 2.5, 4]}}, ["2.5"]),
    ],
)
def test_a_wrongly_typed_merge_option_is_refused_by_name(
    heads: tuple[onnx.ModelProto, onnx.ModelProto], options: dict, needles: list[str]
) -> None:
    refused(lambda: merge_with_report(list(heads), **options), *needles)


def test_a_wrongly_typed_split_option_is_refused_by_name(layout: Path) -> None:
    refused(
        lambda: split(layout, "transpose_0.tmp_0"),
        "outputs must be a list of tensor names, got the string 'transpose_0.tmp_0'",
        "pass ['transpose_0.tmp_0']",
    )
    refused(lambda: split(layout, 3), "outputs must be a list of tensor names, got int 3")
    refused(lambda: split(layout, [CLS[0], 3]), "outputs must be tensor names", "got int 3")
    refused(lambda: split(layout, task=3), "task must be a string, got int 3")
    refused(lambda: split(layout, CLS, strip_prefix=3), "strip_prefix must be a string")
    refused(lambda: split(layout, CLS, check="no"), "check must be True or False")


def test_what_merge_takes_still_merges_alike(
    heads: tuple[onnx.ModelProto, onnx.ModelProto], tmp_path: Path
) -> None:
    cls, box = heads
    merged = merge([cls, box]).SerializeToString()
    assert merge(m for m in (cls, box)).SerializeToString() == merged  # a generator: a list
    # None for a model in the dict form of input_map is no map, as in the list form
    assert merge([cls, box], input_map={1: None}).SerializeToString() == merged
    assert merge([cls, box], input_map=[None, None]).SerializeToString() == merged
    path = tmp_path / "multi.onnx"
    path.write_bytes(merged)
    table = task_table(onnx.load(path))
    assert list(table) == ["m0_", "m1_"]
    assert task_table(path) == task_table(str(path)) == task_table(merged) == table
    refused(lambda: task_table(3), "task_table takes a merged model", "got int 3")


def test_input_map_keys_naming_one_model_add_up(
    heads: tuple[onnx.ModelProto, onnx.ModelProto],
) -> None:
    # the later key's map replaced the earlier's whole: box read 'image', silently
    cls, box = heads
    prefixes = ["cls_", "box_"]
    for input_map in ({1: {"image": "other"}, "box": {}}, {"1": {"image": "other"}, 1: None}):
        merged, report = merge_with_report([cls, box], prefixes=prefixes, input_map=input_map)
        assert [i.name for i in merged.graph.input] == ["image", "other"]
        assert report.tasks[1].inputs == {"image": "other"}
    same = {1: {"image": "other"}, "box_": {"image": "other"}}
    merged, report = merge_with_report([cls, box], prefixes=prefixes, input_map=same)
    assert report.tasks[1].inputs == {"image": "other"}
    with pytest.raises(MergeError, match="maps input 'image' of 'box_' to both 'other' and 'x'"):
        merge(
            [cls, box], prefixes=prefixes, input_map={1: {"image": "other"}, "box": {"image": "x"}}
        )
