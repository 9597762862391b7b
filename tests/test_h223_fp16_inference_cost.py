"""fp16_model runs onnx's shape inference for its H220 checks only where they can use it (H223).

`_block_integer_arithmetic` (a Cast to float of an integer) and `_refuse_float32_sequences`
(a sequence of float tensors) each ran `onnx.shape_inference.infer_shapes` on every model with
a node kept float32: on the detectors, which have neither, 2 of fp16_model's 10 calls (about
20-30% of its time). Now the first infers only where a Cast to float (or a CastLike) reads a
tensor the model does not type as a non-integer, the second only where a sequence can exist.
The cases that need inference (a Range mask, a sequence kept float32) still get it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from unittest import mock

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt.backends.tensorrt import fp16_model
from graphopt.errors import BackendError
from graphopt.realmodels import fetch_model

CHECKS = ("_block_integer_arithmetic", "_refuse_float32_sequences")


@pytest.fixture
def callers() -> Iterator[list[str]]:
    """The names of the functions that call onnx's infer_shapes while the test runs."""
    seen: list[str] = []
    real = onnx.shape_inference.infer_shapes

    def spy(*args: object, **kwargs: object) -> onnx.ModelProto:
        seen.append(sys._getframe(1).f_code.co_name)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with mock.patch.object(onnx.shape_inference, "infer_shapes", spy):
        yield seen


def test_a_detector_is_not_inferred_for_the_checks(callers: list[str]) -> None:
    model = onnx.load(fetch_model("ppocr_det"))
    converted = fp16_model(model)
    assert [c for c in callers if c in CHECKS] == []
    kinds = {t.type.tensor_type.elem_type for t in converted.graph.value_info}
    assert T.FLOAT16 in kinds  # (still converted)


def test_a_range_mask_is_still_inferred_and_kept(callers: list[str]) -> None:
    # Where(Less(Cast(Range(0, n), float), Cast(len, float)), x, 0): Range's type by inference
    nodes = [
        h.make_node("Range", ["zero", "n", "one"], ["r"]),
        h.make_node("Cast", ["r"], ["rf"], to=T.FLOAT),
        h.make_node("Cast", ["len"], ["lf"], to=T.FLOAT),
        h.make_node("Less", ["rf", "lf"], ["m"], name="less"),
        h.make_node("Where", ["m", "x", "zf"], ["y"]),
    ]
    inits = [
        nh.from_array(np.array(0, "int64"), "zero"),
        nh.from_array(np.array(1, "int64"), "one"),
        nh.from_array(np.array(0.0, "float32"), "zf"),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [
            h.make_tensor_value_info("x", T.FLOAT, [4096]),
            h.make_tensor_value_info("n", T.INT64, []),
            h.make_tensor_value_info("len", T.INT64, []),
        ],
        [h.make_tensor_value_info("y", T.FLOAT, [4096])],
        initializer=inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    converted = fp16_model(model)
    assert "_block_integer_arithmetic" in callers
    less = next(n for n in converted.graph.node if n.name == "less")
    casts = {n.output[0]: n for n in converted.graph.node if n.op_type == "Cast"}
    assert all(
        next(a.i for a in casts[i].attribute if a.name == "to") == T.FLOAT
        for i in less.input
        if i in casts
    )


def test_a_sequence_kept_float32_is_still_refused(callers: list[str]) -> None:
    big = nh.from_array(np.array([1e5], "float32"), "big")
    nodes = [
        h.make_node("SequenceEmpty", [], ["s0"], dtype=T.FLOAT),
        h.make_node("SequenceInsert", ["s0", "big"], ["s1"], name="ins"),
        h.make_node("ConcatFromSequence", ["s1"], ["c"], axis=0),
        h.make_node("Add", ["c", "x"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [1])],
        [h.make_tensor_value_info("y", T.FLOAT, [1])],
        initializer=[big],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    with pytest.raises(BackendError, match="sequence of float tensors"):
        fp16_model(model)


def test_an_empty_optional_of_a_sequence_is_still_refused() -> None:
    # Optional(type=seq) -> OptionalGetElement (kept float32) makes a sequence from no input
    seq = h.make_sequence_type_proto(h.make_tensor_type_proto(T.FLOAT, [1]))
    nodes = [
        h.make_node("Optional", [], ["o"], type=seq),
        h.make_node("OptionalGetElement", ["o"], ["s"], name="get"),
        h.make_node("ConcatFromSequence", ["s"], ["c"], axis=0),
        h.make_node("Add", ["c", "x"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [1])],
        [h.make_tensor_value_info("y", T.FLOAT, [1])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])
    with pytest.raises(BackendError, match=r"'get' .*sequence of float tensors"):
        fp16_model(model)
