"""A model saved with external data whose tensors keep their values in typed fields
(`float_data`, ...) that numpy cannot read (an undefined or unknown data type, more values than
the dims hold): `save_model` raised numpy's TypeError / KeyError (a traceback from the CLI) or a
SaveError. Those tensors now stay inline as they were (onnx's own converter leaves every
typed-field tensor inline), and the readable ones still go to the data file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir import load, save_model


def _typed(name: str, data_type: int, count: int, dims: int = 300) -> TensorProto:
    tensor = TensorProto(name=name, data_type=data_type, dims=[dims])
    tensor.float_data.extend(float(i) for i in range(count))
    return tensor


def _model(odd: TensorProto) -> onnx.ModelProto:
    weights = numpy_helper.from_array(np.arange(1000, dtype=np.float32), "big")
    readable = _typed("readable", TensorProto.FLOAT, 600, 600)  # 2400 bytes, typed fields
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"]),
            helper.make_node("Identity", ["big"], ["b"]),
            helper.make_node("Identity", ["readable"], ["r"]),
            helper.make_node("Identity", [odd.name], ["o"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1000]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, [600]),
            helper.make_tensor_value_info("o", TensorProto.FLOAT, [300]),
        ],
        initializer=[weights, readable, odd],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


ODD = {
    "undefined type": _typed("odd", TensorProto.UNDEFINED, 300),
    "unknown type": _typed("odd", 99, 300),
    "too many values": _typed("odd", TensorProto.FLOAT, 301),
    "too few values, small": _typed("odd", TensorProto.FLOAT, 3, 4),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_unreadable_typed_tensor_stays_inline(tmp_path: Path, case: str) -> None:
    source = tmp_path / "m.onnx"
    onnx.save(_model(ODD[case]), source, save_as_external_data=True, location="m.data")
    loaded = load(source)
    assert loaded.external_data
    out = save_model(loaded.model, tmp_path / "o.onnx", external_data=loaded.external_data)
    assert (tmp_path / "o.onnx.data").is_file()
    back = onnx.load(out)  # reads the data file
    by_name = {t.name: t for t in back.graph.initializer}
    assert by_name["odd"] == ODD[case]  # as it was: inline, the same fields
    np.testing.assert_array_equal(
        numpy_helper.to_array(by_name["big"]), np.arange(1000, dtype=np.float32)
    )
    np.testing.assert_array_equal(
        numpy_helper.to_array(by_name["readable"]), np.arange(600, dtype=np.float32)
    )
    stored = onnx.load(out, load_external_data=False)
    located = {t.name for t in stored.graph.initializer if t.data_location == TensorProto.EXTERNAL}
    assert located == {"big", "readable"}


def test_cli_saves_it_without_a_traceback(tmp_path: Path) -> None:
    source = tmp_path / "m.onnx"
    onnx.save(_model(ODD["unknown type"]), source, save_as_external_data=True, location="m.data")
    run = subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", str(source), "-o", str(tmp_path / "o.onnx")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in run.stderr
    assert run.returncode in (0, 2), run.stderr
    if run.returncode == 2:  # refused: one line, no output file
        assert len(run.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o.onnx").exists()
