"""`convert_opset`'s refusals are one line where the model's names hold a newline.

The reason is a line of the callers' errors (quantize, merge, optimize's upgrade). A node named
'up\\nsample' made `misconverted`'s reason two lines, and the converter's own error ("Input x\\nq
is undefined!") was cut at the name by taking its first line.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from graphopt.errors import OpsetConversionError
from graphopt.ir.opset_conversion import convert_opset


def _model(node, opset: int, inits=()):  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", 1, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", 1, None)],
        list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_misconverted_reason_escapes_the_node_name() -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    node = helper.make_node("Upsample", ["x", "s"], ["y"], name="up\nsample", mode="line\nar")
    with pytest.raises(OpsetConversionError) as e:
        convert_opset(_model(node, 9, [scales]), 13)
    assert e.value.kind == "misconverted"
    assert e.value.reason == (
        "up\\nsample: Upsample in line\\nar mode would become a half_pixel Resize"
    )
    assert "\n" not in str(e.value)


def test_converter_error_keeps_the_name_whole() -> None:
    node = helper.make_node("Relu", ["x\nq"], ["y"], name="r")
    with pytest.raises(OpsetConversionError) as e:
        convert_opset(_model(node, 13), 17)
    assert e.value.kind == "converter-failed"
    assert e.value.reason == "Input x\\nq is undefined!"
    assert str(e.value) == "onnx.version_converter failed: Input x\\nq is undefined!"


def test_a_mode_that_is_not_utf8_is_no_traceback() -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    node = helper.make_node("Upsample", ["x", "s"], ["y"], name="up")
    node.attribute.append(helper.make_attribute("mode", b"lin\xffear"))
    with pytest.raises(OpsetConversionError) as e:  # (a UnicodeDecodeError before)
        convert_opset(_model(node, 9, [scales]), 13)
    assert e.value.kind == "misconverted"
    assert e.value.reason == "up: Upsample in lin\ufffdear mode would become a half_pixel Resize"
