"""The element types numpy holds no array of are one public set,
`backends.onnxruntime.NO_NUMPY_ARRAY`: the outputs `run` decodes from their bits
(`BITS_OUTPUTS`) and the inputs calibration refuses (`quant.data.refuse_unfeedable_inputs`)
are both read from it. The refusal imported the backend's private `_NUMPY_LACKS` and restated
`elem == BFLOAT16 or elem in _NUMPY_LACKS`, the test that also made `BITS_OUTPUTS`."""

from __future__ import annotations

import ast
from pathlib import Path

import onnx
import pytest

import graphopt.quant.collect
import graphopt.quant.data
from graphopt.backends.onnxruntime import BITS_OUTPUTS, NO_NUMPY_ARRAY
from graphopt.errors import QuantizeError
from graphopt.quant.data import refuse_unfeedable_inputs

ELEMENT_TYPES = sorted(onnx.TensorProto.DataType.items(), key=lambda item: item[1])


def test_the_set_is_bfloat16_and_the_types_numpy_lacks() -> None:
    named = {onnx.TensorProto.DataType.Name(elem) for elem in NO_NUMPY_ARRAY}
    assert {"BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E5M2", "INT4", "UINT4"} <= named
    # numpy's own types are not in it
    assert named.isdisjoint({"FLOAT", "FLOAT16", "DOUBLE", "INT8", "UINT8", "INT64", "BOOL"})
    assert set(BITS_OUTPUTS.values()) == NO_NUMPY_ARRAY


@pytest.mark.parametrize(("name", "elem"), ELEMENT_TYPES)
def test_calibration_refuses_exactly_the_set(name: str, elem: int) -> None:
    if elem in NO_NUMPY_ARRAY:
        with pytest.raises(QuantizeError, match=f"input x is {name}, which calibration cannot"):
            refuse_unfeedable_inputs([("x", elem, [1])])
    else:
        refuse_unfeedable_inputs([("x", elem, [1])])


@pytest.mark.parametrize("module", [graphopt.quant.data, graphopt.quant.collect])
def test_no_private_name_is_imported_from_another_module(module: object) -> None:
    source = Path(str(getattr(module, "__file__", ""))).read_text(encoding="utf-8")
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and alias.name != "__future__"
    ]
    assert private == []
