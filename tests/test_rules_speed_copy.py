"""The rule runner's cheaper spellings give what the plain ones give.

`_copy_attributes` copies a node's attributes by copying the node whole and clearing the rest:
the result must be the node `attribute.extend` builds, also for a node carrying a field this
onnx does not know. `call_raising` is the registered computation under the runner's raising
flags, with underflow still recorded for `refuse_underflow`.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.patterns import compute
from graphopt.patterns.rewrite import _copy_attributes


def _conv() -> onnx.NodeProto:
    node = onnx.helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], name="c", doc_string="d", kernel_shape=[3, 3],
        strides=[2, 2], pads=[1, 1, 1, 1], group=1,
    )  # fmt: skip
    node.metadata_props.add(key="k", value="v")
    return node


def _by_extend(source: onnx.NodeProto) -> onnx.NodeProto:
    node = onnx.NodeProto()
    node.attribute.extend(source.attribute)
    return node


def test_copied_attributes_are_extends_and_nothing_else():
    source = _conv()
    node = onnx.NodeProto()
    _copy_attributes(node, source)
    assert node.SerializeToString() == _by_extend(source).SerializeToString()
    assert node.attribute == source.attribute and len(node.attribute) == 4
    assert not node.name and not node.input and not node.doc_string and not node.metadata_props


def test_a_field_this_onnx_does_not_know_is_not_copied():
    # field 99, a varint: what a newer onnx's NodeProto field reads as here
    source = onnx.NodeProto.FromString(_conv().SerializeToString() + b"\x98\x06\x07")
    node = onnx.NodeProto()
    _copy_attributes(node, source)
    assert node.SerializeToString() == _by_extend(source).SerializeToString()
    assert b"\x98\x06" not in node.SerializeToString()


def test_call_raising_raises_on_overflow_and_records_underflow():
    big = np.array([3e38], np.float32)
    with pytest.raises(FloatingPointError):
        compute.call_raising("combine", None, big, big, "mul")
    seen = []
    real = compute.refuse_underflow

    def spy(rounded, exact, channels, what):
        seen.append(compute._UNDERFLOWED.get())
        return real(rounded, exact, channels, what)

    compute.refuse_underflow = spy
    try:
        tiny = np.array([1e-30], np.float32)
        with pytest.raises(compute.Refuse):
            compute.call_raising("combine", None, tiny, tiny, "mul")
    finally:
        compute.refuse_underflow = real
    assert seen and seen[0]  # the product underflowed: recorded, so the result was looked at
