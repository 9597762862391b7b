"""A pool, Unsqueeze, ConvTranspose or Resize whose attribute that `runtime_shapes` reads is
given in another type than the op defines (dilations=2 where a list is due): reading it as a
list was a TypeError ('int' object is not iterable) out of `shape_facts`, which never fails,
so `graphopt inspect` printed a traceback (onnx.checker and onnxruntime refuse such a model
with one line). Now such a node is a suspect whose outputs' dims are unknown."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import shape_facts
from graphopt.analysis.runtime_shapes import is_suspect
from graphopt.cli import main
from graphopt.ir import Graph


def _model(
    node: onnx.NodeProto, opset: int, inits: tuple[onnx.TensorProto, ...] = ()
) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node, helper.make_node("Relu", ["x"], ["r"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
        ],
        list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _pool(**attrs: object) -> onnx.ModelProto:
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], **attrs)
    return _model(node, 13)


def _transposed() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((3, 3, 2, 2), np.float32), "w")
    node = helper.make_node(
        "ConvTranspose",
        ["x", "w"],
        ["y"],
        name="up",
        strides=[2, 2],
        auto_pad="SAME_UPPER",
        output_padding=1,
    )
    return _model(node, 13, (weight,))


def _resized() -> onnx.ModelProto:
    scales = numpy_helper.from_array(np.array([2.0, 2.0], np.float32), "s")
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], name="resize", axes=3)
    return _model(node, 18, (scales,))


MISTYPED = {
    "pool dilations": _pool(ceil_mode=1, dilations=2),
    "pool SAME dilations": _pool(auto_pad="SAME_UPPER", dilations=2.0),
    "Unsqueeze-10 axes": _model(helper.make_node("Unsqueeze", ["x"], ["y"], name="u", axes=-1), 10),
    "ConvTranspose output_padding": _transposed(),
    "Resize axes": _resized(),
}


@pytest.mark.parametrize("kind", MISTYPED)
def test_shape_facts_do_not_fail_and_know_no_dims_there(kind):
    model = MISTYPED[kind]
    facts = shape_facts(Graph(model))
    assert facts.shape("y") is None or all(d is None for d in facts.shape("y") or ())
    assert facts.shape("r") == (1, 3, 5, 5)  # (the rest inferred)
    assert is_suspect(model.graph.node[0])


@pytest.mark.parametrize("kind", MISTYPED)
def test_inspect_reports_the_model(tmp_path, capsys, kind):
    path = tmp_path / "m.onnx"
    onnx.save(MISTYPED[kind], str(path))
    assert main(["inspect", str(path)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "  y: float ?" in captured.out


def test_a_pool_typed_as_its_op_keeps_onnxruntimes_dims():
    """The control: a ceil_mode pool whose last window starts in the padding (5, k=2, s=2,
    pads 1: onnxruntime 3, inference 4) is corrected as before, and is no mistyped node."""
    model = _pool(ceil_mode=1, strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1])
    assert shape_facts(Graph(model)).shape("y") == (1, 3, 3, 3)
