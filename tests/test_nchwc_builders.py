"""The layout pass builds nodes, attributes and filters itself (for speed): they must equal what
onnx.helper / numpy_helper build, byte for byte."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphopt.ir import Graph
from graphopt.passes import ort_nchwc

_ATTRIBUTES = {
    "group": 0,
    "alpha": 0.1,
    "auto_pad": b"NOTSET",
    "pads": [1, 0, 1, 0],
    "activation_params": [0.5, -1.25],
    "names": [b"a", b"b"],
}


def test_attributes_rebuilt_like_make_node():
    node = helper.make_node("Conv", ["x"], ["y"], **_ATTRIBUTES)
    node.attribute[0].doc_string = "dropped by a rebuild, as by get_attribute_value"
    expected = helper.make_node("C", [], [], **{**_ATTRIBUTES, "group": 16})
    rebuilt: dict = {}
    for _ in range(2):  # rebuilt, then remembered
        attributes = ort_nchwc._attributes(node, rebuilt, group=16)
        built = ort_nchwc._node("C", [], [], "", "", attributes)
        assert built.SerializeToString() == expected.SerializeToString()


def test_empty_list_attribute_raises_like_make_attribute():
    node = helper.make_node("Conv", ["x"], ["y"])
    node.attribute.add(name="pads", type=onnx.AttributeProto.INTS)
    with pytest.raises(ValueError, match="empty iterator"):
        ort_nchwc._attributes(node, {})


@pytest.mark.parametrize("shape", [(16, 8, 3, 3), (5, 3, 1, 1), (10, 1, 3, 3)])
def test_filter_bytes_equal_the_reorder_functions(shape):
    w = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    padded = np.zeros((shape[0], -(-shape[1] // 8) * 8, *shape[2:]), np.float32)
    padded[:, : shape[1]] = w
    for view, reference in (
        (ort_nchwc._oihw_bibo(w, 8), ort_nchwc.reorder_filter_oihw_bibo(padded, 8)),
        (ort_nchwc._oihw_bo(w, 8), ort_nchwc.reorder_filter_oihw_bo(w, 8)),
    ):
        graph = Graph(helper.make_model(helper.make_graph([], "g", [], [])))
        name = ort_nchwc._add_float_initializer(graph, "w", reference.shape, view)
        expected = numpy_helper.from_array(reference, name)
        assert graph.initializers[name].SerializeToString() == expected.SerializeToString()
