"""Review of merge's constant identities (second adversarial review of graphopt.multitask)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.ir.graph import tensor_value
from graphopt.multitask import merge_with_report
from graphopt.multitask.hashing import ConstantTable


def strings(*items: str) -> np.ndarray:
    """A string tensor's value as the merge reads it (str objects made from the proto's bytes)."""
    return tensor_value(numpy_helper.from_array(np.array(list(items), object)))


def test_string_constants_are_keyed_by_their_text_not_their_addresses():
    """value_digest hashed a string tensor's tobytes(), the addresses of its str objects: equal
    strings read twice got different keys, and a freed address reused by another string gave
    two different constants one key (the later task would read the earlier one's strings)."""
    table = ConstantTable()
    assert table.key(strings("foo", "bar")) == table.key(strings("foo", "bar"))
    keys = [table.key(strings(f"v{i}")) for i in range(100, 120)]
    assert len(set(keys)) == len(keys)
    assert table.key(strings("ab", "c")) != table.key(strings("a", "bc"))


def test_equal_string_tables_of_two_tasks_are_shared_and_others_kept():
    def labels(*names: str) -> onnx.ModelProto:
        table = numpy_helper.from_array(np.array(list(names), object), "names")
        graph = helper.make_graph(
            [helper.make_node("Identity", ["names"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.STRING, [len(names)])],
            initializer=[table],
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m

    merged, report = merge_with_report([labels("cat", "dog"), labels("cat", "dog"), labels("x")])
    assert report.shared_params == 2
    got = ort_run(merged, {"x": np.zeros(1, np.float32)})
    assert list(got["m1_y"]) == ["cat", "dog"] and list(got["m2_y"]) == ["x"]
