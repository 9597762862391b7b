"""External data whose file holds the wrong number of bytes is a one-line load error.

onnx reads an external tensor's `length` bytes, or, without a `length`, the rest of the file:
a data file cut short (or a longer, wrong one) loaded without complaint, and `graphopt optimize`
wrote a model that neither onnxruntime nor onnx.checker accepts. (Without a `length`, a longer
file now loads, read as onnxruntime reads it: the tensor's own size from the offset; H225.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir import load

WEIGHT = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)


def _model(folder: Path, tensor: onnx.TensorProto, entries: dict[str, str]) -> Path:
    """x @ `tensor`, its data referenced by the external data `entries`, saved as folder/m.onnx
    (the data file is the caller's)."""
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", tensor.name], ["y"], name="mm")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])],
        [tensor],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_data_file_too_short_without_length_is_a_load_error(tmp_path, capsys):
    """(A longer one loads: onnxruntime reads the tensor's size from the offset, H225.)"""
    raw = numpy_helper.from_array(WEIGHT, "w").raw_data
    (tmp_path / "w.bin").write_bytes(raw[:-100])
    src = _model(tmp_path, numpy_helper.from_array(WEIGHT, "w"), {"location": "w.bin"})
    with pytest.raises(LoadError, match=r"'w' \(float 64x64\) needs 16384 bytes") as info:
        load(src)
    assert "\n" not in str(info.value)
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "external data" in err
    assert not out.exists()


def test_a_length_that_does_not_fit_the_shape_is_a_load_error(tmp_path):
    raw = numpy_helper.from_array(WEIGHT, "w").raw_data
    (tmp_path / "w.bin").write_bytes(raw)
    src = _model(
        tmp_path,
        numpy_helper.from_array(WEIGHT, "w"),
        {"location": "w.bin", "offset": "0", "length": "100"},
    )
    with pytest.raises(LoadError, match=r"needs 16384 bytes, but 'w\.bin' holds 100"):
        load(src)


def test_tensors_at_offsets_of_one_shared_file_still_load(tmp_path):
    """Right sizes load as before: two tensors in one file (offset and length), and one at an
    offset without a length (the rest of the file), through a normalized sub/../ location."""
    a = numpy_helper.from_array(WEIGHT, "w")
    (tmp_path / "w.bin").write_bytes(b"\0" * 64 + a.raw_data)
    src = _model(tmp_path, a, {"location": "sub/../w.bin", "offset": "64"})
    loaded = load(src)
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.model.graph.initializer[0]), WEIGHT)
    assert loaded.external_data


def test_packed_int4_external_data_of_the_right_size_loads(tmp_path):
    """Sub-byte types are packed two to a byte: 7 int4 values are 4 bytes."""
    values = np.array([1, -2, 3, -4, 5, -6, 7], np.int8)
    int4 = numpy_helper.to_array(oh.make_tensor("q", onnx.TensorProto.INT4, [7], values.tolist()))
    packed = numpy_helper.from_array(int4, "q").raw_data
    assert len(packed) == 4
    (tmp_path / "q.bin").write_bytes(packed)
    t = onnx.TensorProto(name="q", data_type=onnx.TensorProto.INT4, dims=[7])
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="q.bin")
    graph = oh.make_graph(
        [oh.make_node("DequantizeLinear", ["q", "s"], ["y"], name="dq")],
        "g",
        [],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [7])],
        [t, numpy_helper.from_array(np.array(1.0, np.float32), "s")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 21)], ir_version=10)
    src = tmp_path / "q.onnx"
    src.write_bytes(model.SerializeToString())
    loaded = load(src)
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.model.graph.initializer[0]), values)
