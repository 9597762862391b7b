"""merge shares sparse and string Constant nodes by value, as it shares dense constants.

A Constant node with `sparse_value`, `value_string` or `value_strings` was no constant to merge:
it went through node hashing, shared only with a twin of equal attribute bytes. Two models'
sparse Constants of one value whose values tensors had other names (an exporter names them per
model) stayed two, as did a sparse Constant and a dense initializer of one value, or the same
strings given as `value_strings`, a `value` tensor or an initializer. Now each is read as its
value (sparse densely, as onnxruntime loads it) and shared when dtype, shape and value are
equal; the merged outputs equal each model's own in onnxruntime, and split gives each task back.
A sparse initializer with a negative index was read with numpy counting it from the end.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as h

from graphopt.multitask import MergeError, merge, merge_with_report, split

DENSE = np.array([0.0, 2.0, 0.0, 3.0], dtype=np.float32)
STRINGS = [b"a", b"b"]


def _float_model(form: str, tag: str = "", dense: np.ndarray = DENSE) -> onnx.ModelProto:
    """y = x + c, c = `dense` given as a sparse Constant (its values tensor named after `tag`),
    a dense initializer or a dense Constant."""
    nodes, inits = [], []
    if form == "sparse":
        nz = np.flatnonzero(dense)
        values = numpy_helper.from_array(dense.reshape(-1)[nz], f"values{tag}")
        indices = numpy_helper.from_array(nz.astype(np.int64), f"indices{tag}")
        sparse = h.make_sparse_tensor(values, indices, list(dense.shape))
        nodes.append(h.make_node("Constant", [], ["c"], name=f"k{tag}", sparse_value=sparse))
    elif form == "initializer":
        inits.append(numpy_helper.from_array(dense, "c"))
    else:
        nodes.append(h.make_node("Constant", [], ["c"], value=numpy_helper.from_array(dense, "v")))
    nodes.append(h.make_node("Add", ["x", "c"], ["y"]))
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, list(dense.shape))],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, list(dense.shape))],
        initializer=inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _string_model(form: str, strings: list[bytes] = STRINGS) -> onnx.ModelProto:
    """y = Concat(x, c), c = `strings` as value_strings, a `value` tensor, an initializer, or
    (one string) value_string."""
    nodes, inits = [], []
    tensor = h.make_tensor("c", TensorProto.STRING, [len(strings)], strings)
    if form == "value_strings":
        nodes.append(h.make_node("Constant", [], ["c"], value_strings=strings))
    elif form == "value_string":
        nodes.append(h.make_node("Constant", [], ["c0"], value_string=strings[0]))
        nodes.append(h.make_node("Unsqueeze", ["c0", "axes"], ["c"]))
        inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes"))
    elif form == "value":
        nodes.append(h.make_node("Constant", [], ["c"], value=tensor))
    else:
        inits.append(tensor)
    nodes.append(h.make_node("Concat", ["x", "c"], ["y"], axis=0))
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", TensorProto.STRING, [1])],
        [h.make_tensor_value_info("y", TensorProto.STRING, [1 + len(strings)])],
        initializer=inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


def _constants(model: onnx.ModelProto) -> int:
    """How many constants the main graph holds: Constant nodes and initializers (an Unsqueeze
    axes initializer aside)."""
    nodes = sum(n.op_type == "Constant" for n in model.graph.node)
    return nodes + sum(t.name != "axes" for t in model.graph.initializer)


def _check_outputs(models: list[onnx.ModelProto], merged: onnx.ModelProto, x: np.ndarray) -> None:
    got = _run(merged, {"x": x})
    for i, model in enumerate(models):
        expected = _run(model, {"x": x})["y"]
        assert got[f"m{i}_y"].dtype == expected.dtype
        np.testing.assert_array_equal(got[f"m{i}_y"], expected)
        task = split(merged, task=f"m{i}_")  # each task back, as its own model computes
        np.testing.assert_array_equal(_run(task, {"x": x})["y"], expected)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("sparse", "0"), ("sparse", "1")),  # values tensors named apart
        (("sparse", "0"), ("initializer", "")),
        (("initializer", ""), ("sparse", "1")),
        (("sparse", "0"), ("constant", "")),
    ],
)
def test_equal_sparse_constants_are_shared(first: tuple[str, str], second: tuple[str, str]) -> None:
    models = [_float_model(*first), _float_model(*second)]
    merged, report = merge_with_report(models)
    assert _constants(merged) == 1
    assert [n.op_type for n in merged.graph.node if n.op_type not in ("Constant",)] == [
        "Add",
        "Identity",
    ]
    assert report.tasks[1].params == DENSE.size and report.tasks[1].shared_params == DENSE.size
    _check_outputs(models, merged, np.arange(4, dtype=np.float32))


def test_sparse_constants_of_other_values_or_shapes_stay_apart() -> None:
    other = np.array([0.0, 2.0, 0.0, 4.0], dtype=np.float32)
    models = [_float_model("sparse", "0"), _float_model("sparse", "1", other)]
    merged = merge(models)
    assert _constants(merged) == 2
    _check_outputs(models, merged, np.arange(4, dtype=np.float32))
    square = DENSE.reshape(2, 2)  # the same values, another shape
    merged = merge([_float_model("sparse", "0"), _float_model("sparse", "1", square)])
    assert _constants(merged) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("value_strings", "value_strings"),
        ("value_strings", "value"),
        ("value", "value_strings"),
        ("value_strings", "initializer"),
        ("initializer", "value_strings"),
    ],
)
def test_equal_string_constants_are_shared(first: str, second: str) -> None:
    models = [_string_model(first), _string_model(second)]
    merged = merge(models)
    assert _constants(merged) == 1
    assert [n.op_type for n in merged.graph.node if n.op_type != "Constant"] == [
        "Concat",
        "Identity",
    ]
    _check_outputs(models, merged, np.array(["x"], dtype=object))


def test_string_constants_of_other_values_or_shapes_stay_apart() -> None:
    models = [_string_model("value_strings"), _string_model("value_strings", [b"a", b"c"])]
    merged = merge(models)
    assert _constants(merged) == 2
    _check_outputs(models, merged, np.array(["x"], dtype=object))
    # a scalar 'a' (value_string) and ['a'] (value_strings) differ in shape
    models = [_string_model("value_string", [b"a"]), _string_model("value_strings", [b"a"])]
    merged = merge(models)
    assert sum(n.op_type == "Constant" for n in merged.graph.node) == 2
    _check_outputs(models, merged, np.array(["x"], dtype=object))


def test_two_equal_sparse_constants_of_one_model_stay_two_as_dense_ones_do() -> None:
    """The k-th constant of a value in one model is shared with the k-th in another; within
    one model two stay two, as the model has them (and split gives both back)."""
    values = numpy_helper.from_array(np.array([3.0], np.float32), "v")
    indices = numpy_helper.from_array(np.array([1], np.int64), "i")
    sparse = h.make_sparse_tensor(values, indices, [2])
    graph = h.make_graph(
        [
            h.make_node("Constant", [], ["c1"], sparse_value=sparse),
            h.make_node("Constant", [], ["c2"], sparse_value=sparse),
            h.make_node("Add", ["x", "c1"], ["a"]),
            h.make_node("Mul", ["a", "c2"], ["y"]),
        ],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    merged, report = merge_with_report([model, model])
    assert sum(n.op_type == "Constant" for n in merged.graph.node) == 2
    assert report.tasks[0].params == 4 and report.tasks[1].shared_params == 4
    _check_outputs([model, model], merged, np.array([1.0, 2.0], np.float32))


def test_a_sparse_initializer_with_a_negative_index_is_refused() -> None:
    model = _float_model("initializer")
    values = numpy_helper.from_array(np.array([2.0, 3.0], np.float32), "c")
    indices = numpy_helper.from_array(np.array([1, -1], np.int64), "ci")
    del model.graph.initializer[:]
    model.graph.sparse_initializer.append(h.make_sparse_tensor(values, indices, [4]))
    with pytest.raises(MergeError, match="negative indices"):
        merge([model, _float_model("initializer")], check=False)
